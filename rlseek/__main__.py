"""``python -m rlseek``: the ``rlseek`` command, also as ``torchrun ... -m rlseek train CONFIG``
(torchrun's ``-m`` runs a module, and the console script is not one)."""

from rlseek.cli.main import main

raise SystemExit(main())
