"""rlseek: reinforcement learning for text generation and robot control.

Importing rlseek registers its Gymnasium environments (``rlseek/<Task>-v<N>``).
"""

__version__ = "0.1.0"

from rlseek import envs as _envs  # noqa: E402,F401  (registers the environments)
