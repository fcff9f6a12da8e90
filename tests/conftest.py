"""Test-session settings shared by every test file.

MLflow tracking is switched off for the whole session (``RLSEEK_TRACKING=off``): a test never
writes to the user's ``runs/mlflow.db`` or to a server named in the developer's environment,
and tests that do not test tracking pay nothing for MLflow's import and store setup. The
tracking tests switch it back on for themselves, against a temporary sqlite store.
"""

import os

os.environ["RLSEEK_TRACKING"] = "off"
os.environ.pop("MLFLOW_TRACKING_URI", None)
