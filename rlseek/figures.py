"""Figure files: what a benchmark or the demo measured, as JSON, so the README quotes files.

A figure file holds one measurement::

    {"name": "bench_robot_env", "command": "python benchmarks/bench_robot_env.py",
     "measured_at": "2026-12-02T16:30:00+00:00", "rlseek_version": "0.1.0",
     "machine": {"platform": ..., "cpus": 2, "python": ..., "torch": ..., "cuda": null},
     "figures": {"ratio": 0.966, ...}}

Benchmarks write ``figures/<name>.json`` in the source tree and the demo writes
``figures.json`` into its output folder (``rlseek demo --figures FILE`` copies it elsewhere);
``tests/test_readme_figures.py`` checks that the README's headline figures are the committed
files' numbers, so a figure cannot drift from the measurement it came from.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlseek._version import __version__
from rlseek.runs import atomic_write_json

SOURCE_FIGURES = Path(__file__).resolve().parent.parent / "figures"
"""The source tree's folder of committed figure files (benchmarks write here by default)."""


def machine() -> dict[str, Any]:
    """Where a figure was measured: platform, CPU count, Python, torch and CUDA device (if any),
    and the versions of transformers and trl where the measuring process loaded them (what a
    model-training figure depends on, beside torch)."""
    info: dict[str, Any] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                            "python": platform.python_version(), "torch": None, "cuda": None}
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["cuda"] = torch.cuda.get_device_name(0)
    for lib in ("transformers", "trl"):
        module = sys.modules.get(lib)
        if module is not None:
            info[lib] = getattr(module, "__version__", None)
    return info


def write_figures(path: str | Path, name: str, figures: Mapping[str, Any], *,
                  command: str | None = None) -> Path:
    """Write the figure file ``path`` (atomically) for measurement ``name``; returns the path.

    ``figures`` maps figure names to numbers (or small JSON values); ``command`` is the command
    line that measured them (default: this process's ``sys.argv``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "name": name,
        "command": command if command is not None else " ".join(["python", *sys.argv]),
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rlseek_version": __version__,
        "machine": machine(),
        "figures": dict(figures),
    }
    atomic_write_json(path, doc)
    return path
