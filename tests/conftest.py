"""Test-session settings shared by every test file.

MLflow tracking is switched off for the whole session (``RLSEEK_TRACKING=off``): a test never
writes to the user's ``runs/mlflow.db`` or to a server named in the developer's environment,
and tests that do not test tracking pay nothing for MLflow's import and store setup. The
tracking tests switch it back on for themselves, against a temporary sqlite store.
"""

import os

os.environ["RLSEEK_TRACKING"] = "off"
os.environ.pop("MLFLOW_TRACKING_URI", None)

# The longest file first: with two workers (`make test` runs `pytest -n 2 --dist loadfile`) the
# demo's end-to-end module then runs beside the rest instead of after it.
_FIRST = ("test_demo.py",)


def pytest_collection_modifyitems(items: list) -> None:  # type: ignore[type-arg]
    items.sort(key=lambda item: item.path.name not in _FIRST)
