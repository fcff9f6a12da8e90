"""rlseek: reinforcement learning for text generation and robot control.

Importing rlseek registers its Gymnasium environments (``rlseek/<Task>-v<N>``) and its reward
terms (see :mod:`rlseek.builtins`).
``rlseek.train(config, out=...)`` and ``rlseek.evaluate(run_dir)`` are the Python API of
``rlseek train`` and ``rlseek eval``.
"""

from typing import Any

from rlseek._version import __version__
from rlseek.builtins import register_builtins as _register_builtins

_register_builtins()  # the built-in reward terms and env ids; agents load on first lookup

__all__ = ["__version__", "evaluate", "train"]


def __getattr__(name: str) -> Any:
    # train/evaluate import the agents lazily, so `import rlseek` stays light.
    if name in ("train", "evaluate", "load_summary"):
        from rlseek import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlseek' has no attribute {name!r}")
