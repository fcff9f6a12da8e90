"""d3rlpy's BCQ and behaviour cloning behind one small interface, saved without pickle.

``make_algo("bcq", discrete=False)`` is d3rlpy's ``BCQConfig`` (φ = ``action_flexibility`` 0.05,
λ = ``lam`` 0.75, ``n_action_samples`` 100: d3rlpy's defaults, which follow Fujimoto et al. 2019);
with ``discrete=True`` it is ``DiscreteBCQConfig``. ``"bc"`` is ``BCConfig`` / ``DiscreteBCConfig``.

Saving: d3rlpy's ``save()``/``load_learnable()`` pickle the whole object, so rlseek never uses
them. :func:`save_algo` writes the config as JSON and the weights and optimizer states with
``torch.save``; :func:`load_algo` rebuilds the algorithm from the JSON and reads the weights with
``torch.load(weights_only=True)``. Even so, load these files only from run directories rlseek
wrote.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlseek.config import check_field
from rlseek.errors import ConfigError, DataError, RlseekError, did_you_mean

ALGOS = ("bcq", "bc")
CONFIG_FILE, WEIGHTS_FILE = "d3rlpy_config.json", "d3rlpy_weights.pt"

def quiet_d3rlpy() -> None:
    """Silence d3rlpy's per-call info and warning logs (structlog); errors still show."""
    from rlseek.runtime import quiet_libraries

    quiet_libraries("d3rlpy")


def config_class(algo: str, discrete: bool) -> type:
    """The d3rlpy config class for ``algo`` ('bcq' or 'bc')."""
    import d3rlpy

    table = {
        ("bcq", False): d3rlpy.algos.BCQConfig, ("bcq", True): d3rlpy.algos.DiscreteBCQConfig,
        ("bc", False): d3rlpy.algos.BCConfig, ("bc", True): d3rlpy.algos.DiscreteBCConfig,
    }
    if algo not in ALGOS:
        raise RlseekError(f"unknown algo '{algo}'{did_you_mean(algo, ALGOS)}; known offline algos: {', '.join(ALGOS)}")
    return table[(algo, discrete)]


def scalar_fields(algo: str, discrete: bool) -> dict[str, Any]:
    """The config's number/bool fields and their defaults (what ``params`` may set)."""
    cls = config_class(algo, discrete)
    out = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if isinstance(default, (bool, int, float)):
            out[f.name] = default
    return out


def make_algo(algo: str, discrete: bool, params: dict[str, Any] | None = None, device: str = "cpu",
              compile_graph: bool = False, source: str = "agent.params", file: str | None = None) -> Any:
    """Create a d3rlpy algorithm; unknown or ill-typed ``params`` fail naming the field.

    ``source`` is the field path of ``params`` in messages, ``file`` the config it came from."""
    quiet_d3rlpy()
    cls = config_class(algo, discrete)
    fields = scalar_fields(algo, discrete)
    kwargs: dict[str, Any] = {}
    for key, value in (params or {}).items():
        if key not in fields:
            raise ConfigError(
                f"{file + ': ' if file else ''}{source}: unknown field '{key}'{did_you_mean(key, fields)} for {cls.__name__}; "
                f"settable: {', '.join(sorted(fields))}"
            )
        kwargs[key] = check_field(value, type(fields[key]), f"{source}.{key}", file)
    if compile_graph:
        kwargs["compile_graph"] = True
    return cls(**kwargs).create(device=d3_device(device))


PRIME_STEPS = 50


def prime_compile_graph(algo: str, discrete: bool, buffer: Any, params: dict[str, Any] | None,
                        device: str, steps: int = PRIME_STEPS) -> None:
    """Run ``steps`` uncompiled gradient steps of a throw-away ``algo`` on ``device`` in this process.

    Why: with torch 2.11 and d3rlpy 2.8.0 on an H200, the first ``compile_graph=True`` BCQ of a
    process failed in its first compiled update (compiled autograd: "aten::_local_scalar_dense()
    Expected a value of type 'Tensor' ... found type 'float'"), measured in fresh processes with
    ``update()`` and with ``fitter()``, with and without ``d3rlpy.seed``, on random and
    medium-replay Reacher data. After 50 uncompiled CUDA updates of another BCQ in the same process
    the compiled one trained. Call this before seeding the real run: it consumes random numbers.
    The cost is ``steps`` uncompiled updates (about 1 s for BCQ on an H200).
    """
    if steps < 1 or not str(d3_device(device)).startswith("cuda"):
        return
    throwaway = make_algo(algo, discrete, params, device=device, compile_graph=False)
    throwaway.build_with_dataset(buffer)
    for _ in range(steps):
        throwaway.update(buffer.sample_transition_batch(throwaway.config.batch_size))
    del throwaway
    torch.cuda.empty_cache()


def d3_device(device: str) -> str | bool:
    """rlseek's device string ('auto', 'cpu', 'cuda', 'cuda:1') as d3rlpy wants it."""
    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else False
    if device == "cpu":
        return False
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RlseekError(f"device '{device}' asked for, but no CUDA GPU is available")
        return device if ":" in device else "cuda:0"
    raise RlseekError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N")


def policy_fn(algo: Any, discrete: bool) -> Callable[[np.ndarray], Any]:
    """``obs -> action`` for rlseek's evaluator. BCQ's greedy action picks the best of 100
    sampled candidates, so it draws from torch's generator: seed torch before evaluating."""

    def act(obs: np.ndarray) -> Any:
        a = algo.predict(np.asarray(obs, dtype=np.float32)[None])[0]
        return int(a) if discrete else a

    return act


def save_algo(algo: Any, folder: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``d3rlpy_config.json`` (config, shapes, grad step) and ``d3rlpy_weights.pt``."""
    from d3rlpy.base import LearnableConfigWithShape

    folder = Path(folder)
    assert algo.impl is not None, "build the algorithm before saving it"
    cfg = LearnableConfigWithShape(observation_shape=algo.impl.observation_shape,
                                   action_size=algo.impl.action_size, config=algo.config)
    doc = {"d3rlpy": json.loads(cfg.serialize()), "grad_step": int(algo.grad_step), **(extra or {})}
    (folder / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
    buf = io.BytesIO()
    algo.impl.save_model(buf)
    (folder / WEIGHTS_FILE).write_bytes(buf.getvalue())


def load_algo(folder: str | Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild an algorithm saved by :func:`save_algo`; returns it and its JSON document."""
    from d3rlpy.base import LearnableConfigWithShape

    quiet_d3rlpy()
    folder = Path(folder)
    try:
        doc = json.loads((folder / CONFIG_FILE).read_text())
        cfg = LearnableConfigWithShape.deserialize(json.dumps(doc["d3rlpy"]))
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{folder}: cannot read the saved offline agent ({exc})") from None
    algo = cfg.config.create(device=d3_device(device))
    algo.create_impl(cfg.observation_shape, cfg.action_size)
    where = "cpu" if str(algo.impl.device).startswith("cpu") else algo.impl.device
    state = torch.load(folder / WEIGHTS_FILE, map_location=where, weights_only=True)
    for name, module in algo.impl.modules.create_checkpointer(algo.impl.device).modules.items():
        module.load_state_dict(state[name])
    algo.set_grad_step(int(doc.get("grad_step", 0)))
    return algo, doc
