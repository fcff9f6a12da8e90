"""``python -m rlseek.cli``: the ``rlseek`` command."""

from rlseek.cli.main import main

raise SystemExit(main())
