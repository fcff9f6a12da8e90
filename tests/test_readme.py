"""The README's commands cannot drift from the code.

Every ``rlseek ...`` line in a fenced ``bash`` block of README.md must parse with the real CLI
parser, and every repository file it names (configs, scripts) must exist. Every ``make`` target
the README names must exist in the Makefile. The quick demo itself is run by test_demo.py.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rlseek.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _bash_lines() -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        buf = ""
        for raw in block.splitlines():
            line = raw.split("  #")[0].rstrip()
            if line.endswith("\\"):
                buf += line[:-1] + " "
                continue
            line = (buf + line).strip()
            buf = ""
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


RLSEEK_LINES = [ln for ln in _bash_lines() if ln.startswith("rlseek ")]
MAKE_LINES = [ln for ln in _bash_lines() if ln.startswith("make ")]


def test_readme_has_commands() -> None:
    assert len(RLSEEK_LINES) >= 8
    assert "make demo" in MAKE_LINES and "make test" in MAKE_LINES


@pytest.mark.parametrize("line", RLSEEK_LINES)
def test_readme_rlseek_command_parses(line: str) -> None:
    argv = shlex.split(line)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse error or --help
        raise AssertionError(f"README command does not parse: {line}") from exc
    assert getattr(args, "func", None) is not None or args.version
    for tok in argv:
        if tok.startswith(("examples/", "scripts/", "benchmarks/")):
            assert (ROOT / tok).exists(), f"README names a missing file: {tok}"


@pytest.mark.parametrize("line", MAKE_LINES)
def test_readme_make_targets_exist(line: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in shlex.split(line)[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"no make target {target}"


PY_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.mark.parametrize("code", PY_BLOCKS, ids=[f"block{i}" for i in range(len(PY_BLOCKS))])
def test_readme_python_block_runs(code: str) -> None:
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
