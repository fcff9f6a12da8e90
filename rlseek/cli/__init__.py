"""The ``rlseek`` command line: one module per command group, each with ``register_cli``.

``rlseek.cli:main`` is the console script; ``python -m rlseek.cli`` runs it too. Every handler
is a thin layer over the Python API (:mod:`rlseek.api` and the feature packages' functions).
"""

from rlseek.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
