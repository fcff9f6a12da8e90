"""Process settings every training entry point shares: torch threads, the device, quiet libraries.

One helper each, so SB3, lm-ppo, the offline agents, reward-model training and ``offline
compare`` make the same choice the same way:

* :func:`set_torch_threads` — ``run.torch_threads`` on CPU (GPU runs are left alone);
* :func:`resolve_device` — ``"auto"`` becomes ``"cuda"`` when a GPU is visible, else ``"cpu"``;
  an explicit CUDA device without a GPU fails with one clear line;
* :func:`quiet_libraries` — no progress bars or info chatter from transformers, d3rlpy
  (structlog), MLflow or alembic: rlseek's own output says where a run is.
"""

from __future__ import annotations

import logging

from rlseek.errors import RlseekError

_quieted: set[str] = set()


def resolve_device(device: str = "cpu", *, check: bool = False) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; other names pass through.

    With ``check=True`` a CUDA device asked for by name on a machine without one raises
    :class:`~rlseek.errors.RlseekError` (instead of failing later inside torch).
    """
    import torch

    name = str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if check and name.startswith("cuda") and not torch.cuda.is_available():
        raise RlseekError(f"run.device is '{name}' but no CUDA device is available; use cpu or auto")
    return name


def set_torch_threads(device: str, threads: int, *, default: int | None = 1) -> None:
    """Apply a CPU thread count to torch; does nothing for CUDA devices.

    Args:
        device: the (resolved or unresolved) device name; ``cuda*`` leaves torch alone.
        threads: ``run.torch_threads``; > 0 is used as given.
        default: what ``threads == 0`` means — 1 for small networks (extra threads spin when
            the env steps in the same process; on 2 busy cores 2 threads made runs 5-10x
            slower), ``None`` for torch's own default (language models).
    """
    if str(device).startswith("cuda"):
        return
    n = int(threads) if threads and threads > 0 else default
    if n is not None:
        import torch

        torch.set_num_threads(max(1, int(n)))


def quiet_libraries(*names: str) -> None:
    """Silence progress bars and info logs of the named libraries (idempotent).

    Known names: ``transformers`` (load/save progress bars, hub notices), ``d3rlpy``
    (structlog info and warnings), ``mlflow`` (store migrations, run links), ``alembic``.
    Errors still show.
    """
    for name in names:
        if name in _quieted:
            continue
        if name == "transformers":
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        elif name == "d3rlpy":
            import structlog

            structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
        elif name == "mlflow":
            import mlflow  # noqa: F401  (its import configures the "mlflow" logger at INFO)

            logging.getLogger("mlflow").setLevel(logging.WARNING)
        elif name == "alembic":
            logging.getLogger("alembic").setLevel(logging.WARNING)
        else:
            raise ValueError(f"quiet_libraries: unknown library {name!r}")
        _quieted.add(name)
