"""rlseek: reinforcement learning for text generation and robot control.

Importing rlseek registers its Gymnasium environments (``rlseek/<Task>-v<N>``).
``rlseek.train(config, out=...)`` and ``rlseek.evaluate(run_dir)`` are the Python API of
``rlseek train`` and ``rlseek eval``.
"""

from typing import Any

__version__ = "0.1.0"

from rlseek import envs as _envs  # noqa: E402,F401  (registers the environments)

__all__ = ["__version__", "evaluate", "train"]


def __getattr__(name: str) -> Any:
    # train/evaluate import the agents lazily, so `import rlseek` stays light.
    if name in ("train", "evaluate", "load_summary"):
        from rlseek import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlseek' has no attribute {name!r}")
