"""Offline agents for ``rlseek train``: ``bcq`` (d3rlpy BCQ) and ``bc`` (behaviour cloning).

Config::

    env:   {id: rlseek/Reacher-v0}            # evaluation env; must match the dataset's spaces
    agent: {algo: bcq, params: {dataset: data/reacher-medium-replay.h5, batch_size: 100}}
    run:   {total_steps: 5000, seed: 0, device: auto, eval_every: 1000, eval_episodes: 10,
            checkpoint_every: 1000}

``run.total_steps`` counts *gradient steps* (there is no env interaction while training).
``run.torch_threads`` 0 (the default) means one CPU thread for these small networks.
``agent.params`` holds ``dataset`` (an HDF5 file from ``rlseek offline collect``) and any number
or flag field of d3rlpy's config (``BCQConfig``: ``action_flexibility`` φ = 0.05, ``lam`` λ = 0.75,
``n_action_samples`` 100, learning rates, ``batch_size``, ``gamma`` ...); discrete-action datasets
use ``DiscreteBCQConfig`` / ``DiscreteBCConfig``.

Checkpoints and ``final/`` hold the config as JSON and the weights via ``torch.save``, read back
with ``torch.load(weights_only=True)`` (d3rlpy's own ``save`` pickles; rlseek never calls it).
Load them only from run directories rlseek wrote. Evaluation uses rlseek's seeded evaluator
(reset seeds ``10000 + i``), reporting per-episode returns, the normalized score against the
dataset's reference returns and the success rate where the env reports one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rlseek.agents.base import Agent, AgentConfig, register_agent
from rlseek.agents.loop import TrainingLoop
from rlseek.errors import ConfigError, RlseekError
from rlseek.evaluation import EVAL_SEED_OFFSET
from rlseek.runs import Run
from rlseek.runtime import resolve_device, set_torch_threads

EVAL_SEED = EVAL_SEED_OFFSET
"""Evaluation reset seeds are ``EVAL_SEED + i`` for every run (common random numbers); BCQ's
candidate sampling draws from torch seeded with ``EVAL_SEED + run.seed``."""


class _LoopAdapter:
    """d3rlpy logger adapter writing its losses through the loop's one logger (TensorBoard +
    MLflow) at the run's global gradient step (resume-safe); keeps the last losses."""

    def __init__(self, loop: TrainingLoop, offset: int) -> None:
        self.loop, self.offset = loop, offset
        self.last: dict[str, float] = {}

    def write_params(self, params: dict[str, Any]) -> None: ...
    def before_write_metric(self, epoch: int, step: int) -> None: ...

    def write_metric(self, epoch: int, step: int, name: str, value: float) -> None:
        key = f"{'time' if name.startswith('time_') else 'loss'}/{name}"
        self.loop.log({key: value}, self.offset + step)
        if not name.startswith("time_"):
            self.last[name] = float(value)

    def after_write_metric(self, epoch: int, step: int) -> None:
        self.loop.logger.flush()

    def save_model(self, epoch: int, algo: Any) -> None: ...
    def close(self) -> None: ...
    def watch_model(self, epoch: int, step: int) -> None: ...


class _LoopAdapterFactory:
    def __init__(self, adapter: _LoopAdapter) -> None:
        self.adapter = adapter

    def create(self, algo: Any, experiment_name: str, n_steps_per_epoch: int) -> _LoopAdapter:
        return self.adapter


def _set_torch_threads(rs: Any) -> None:
    """``run.torch_threads`` on CPU; 0 means 1 here: d3rlpy's MLPs are small, and on a shared
    machine extra threads spin (a tiny SAC run measured 16 s with 1 thread, 164 s with 2, on 2
    busy cores)."""
    set_torch_threads(str(rs.device), rs.torch_threads, default=1)


@dataclass
class OfflineConfig(AgentConfig):
    """``agent.params`` of an offline agent: the dataset and d3rlpy config fields.

    The d3rlpy fields are checked against the config class when the algorithm is built
    (which class, continuous or discrete, depends on the dataset's action space).
    """

    dataset: str = ""
    """The HDF5 dataset from ``rlseek offline collect``."""
    d3rlpy: dict[str, Any] = field(default_factory=dict)
    """Number and flag fields of d3rlpy's config (``BCQConfig``, ``BCConfig``, ...)."""

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "agent.params") -> OfflineConfig:
        params = dict(params or {})
        path = params.pop("dataset", None)
        if not path or not isinstance(path, str):
            raise ConfigError(f"field '{where}.dataset' must name an offline dataset (.h5), got {path!r}")
        return cls(dataset=path, d3rlpy=params)

    def to_params(self) -> dict[str, Any]:
        return {"dataset": self.dataset, **self.d3rlpy}


class OfflineAgent(Agent):
    """Shared training/evaluation of the d3rlpy agents (see the module docstring)."""

    env_kind: ClassVar[str] = "offline"
    config_class: ClassVar[type[AgentConfig]] = OfflineConfig
    params: OfflineConfig
    d3_name: ClassVar[str] = ""

    def _split_params(self) -> tuple[Path, dict[str, Any]]:
        return Path(self.params.dataset), dict(self.params.d3rlpy)

    def _load(self) -> tuple[Any, Any, dict[str, Any]]:
        from rlseek.envs.factory import make_env
        from rlseek.offline.dataset import read_dataset

        path, params = self._split_params()
        ds = read_dataset(path)
        env = make_env(self.config.env)
        ds.check_env(env, source=str(path))
        return ds, env, params

    def train(self, run: Run, *, resume: bool = False, progress: bool = False) -> dict[str, Any]:
        """The loop's hooks, in order: setup (or resume from the newest checkpoint), then
        gradient steps in chunks that end at the next evaluation, checkpoint or the budget
        (``loop.iteration`` after each), the evaluation and checkpoint when due; at the end the
        final weights, the final evaluation and ``loop.summary``."""
        import d3rlpy

        from rlseek.offline.algos import load_algo, make_algo, prime_compile_graph, save_algo

        _set_torch_threads(self.config.run)
        ds, env, params = self._load()
        path, _ = self._split_params()
        digest = run.add_fingerprint("dataset", path)
        cfg = self.config.run
        start = 0
        buffer = ds.to_d3rlpy()
        if resume:
            cp = run.latest_checkpoint()
            assert cp is not None
            if cp.state.get("dataset_sha256") not in (None, digest):
                raise RlseekError(f"{path} changed since the run started (sha256 differs); resume needs the same dataset")
            algo, _doc = load_algo(cp.path, device=cfg.device)
            start = cp.step
        else:
            if params.get("compile_graph"):
                prime_compile_graph(self.d3_name, ds.discrete, buffer, params, cfg.device)
            d3rlpy.seed(cfg.seed)
            algo = make_algo(self.d3_name, ds.discrete, params, device=cfg.device,
                             file=self.config.source)
        loop = TrainingLoop(run, unit="gradient steps", total=cfg.total_steps, start=start,
                            progress=progress, desc=self.algo, device=resolve_device(cfg.device))
        evals: list[dict[str, Any]] = []
        step = start
        adapter = _LoopAdapter(loop, step)
        eval_seconds, fit_seconds = 0.0, 0.0
        try:
            while step < cfg.total_steps:
                # Train up to the next evaluation, checkpoint or the end, whichever comes first.
                n = min(loop.evals.until_next(step) or cfg.total_steps,
                        loop.checkpoints.until_next(step) or cfg.total_steps, cfg.total_steps - step)
                adapter.offset = step
                t0 = time.perf_counter()
                for _ in algo.fitter(buffer, n_steps=n, n_steps_per_epoch=n, experiment_name="d3rlpy",
                                     with_timestamp=False, logger_adapter=_LoopAdapterFactory(adapter),
                                     show_progress=False):
                    pass
                step += n
                fit_seconds += time.perf_counter() - t0
                loop.iteration(step, train_s=time.perf_counter() - t0, items=n)
                if loop.eval_due(step) or step == cfg.total_steps:
                    t1 = time.perf_counter()
                    ev = self._evaluate(algo, ds, env, cfg.eval_episodes)
                    eval_seconds = time.perf_counter() - t1
                    evals.append({"step": step, **{k: ev[k] for k in ("mean_return", "normalized_score", "success_rate")}})
                    loop.log_eval(ev, step, ("mean_return", "normalized_score", "success_rate"))
                if loop.checkpoint_due(step) or step == cfg.total_steps:
                    run.save_checkpoint(step, lambda d: save_algo(algo, d), {"dataset_sha256": digest})
        finally:
            loop.logger.flush()
        wall = loop.elapsed_s()
        run.final_dir.mkdir(exist_ok=True)
        save_algo(algo, run.final_dir, {"algo": self.algo, "dataset_sha256": digest, "reference": ds.metadata.get("reference")})
        if evals and evals[-1]["step"] == step:
            final = ev
        else:  # resumed at the budget: nothing trained in this session
            t1 = time.perf_counter()
            final = self._evaluate(algo, ds, env, cfg.eval_episodes)
            eval_seconds = time.perf_counter() - t1
        env.close()
        trained = step - start
        summary = loop.summary(
            algo=self.algo, steps=step, eval=final, resumed_from=start if resume else None,
            gradient_steps=step, train_seconds=wall, fit_seconds=fit_seconds,
            grad_steps_per_second=trained / fit_seconds if fit_seconds > 0 and trained else None,
            eval_seconds=eval_seconds, final_losses=dict(adapter.last),
            dataset={"path": str(path), "sha256": digest, "kind": ds.metadata.get("kind")},
            evals=evals,
        )
        loop.close()
        return summary

    def _evaluate(self, algo: Any, ds: Any, env: Any, episodes: int) -> dict[str, Any]:
        import torch

        from rlseek.evaluation import evaluate_episodes
        from rlseek.offline.algos import policy_fn

        torch.manual_seed(EVAL_SEED + int(self.config.run.seed))  # BCQ samples candidate actions
        res = evaluate_episodes(env, policy_fn(algo, ds.discrete), episodes, seed=EVAL_SEED)
        out = res.summary()
        out["lengths"] = [int(n) for n in res.lengths]
        norm = ds.normalized(res.returns)
        out["normalized_score"] = float(np.mean(norm)) if norm is not None else None
        out["normalized_returns"] = [float(x) for x in norm] if norm is not None else None
        return out

    def evaluate(self, run: Run, *, episodes: int | None = None) -> dict[str, Any]:
        from rlseek.offline.algos import load_algo

        folder = run.final_dir
        if not (folder / "d3rlpy_config.json").is_file():
            cp = run.latest_checkpoint()
            if cp is None:
                raise RlseekError(f"{run.path} has neither final/ nor a checkpoint to evaluate")
            folder = cp.path
        _set_torch_threads(self.config.run)
        ds, env, _ = self._load()
        algo, _ = load_algo(folder, device=self.config.run.device)
        result = self._evaluate(algo, ds, env, episodes or self.config.run.eval_episodes)
        env.close()
        return result


@register_agent("bcq")
class BCQAgent(OfflineAgent):
    """Batch-Constrained Q-learning (Fujimoto et al. 2019) through d3rlpy: a VAE models the
    data's actions, a perturbation network (φ = 0.05) adjusts them, twin critics (λ = 0.75)
    pick the best of 100 sampled candidates."""

    d3_name = "bcq"


@register_agent("bc")
class BCAgent(OfflineAgent):
    """Behaviour cloning through d3rlpy: regress the data's actions (MSE) or classify them."""

    d3_name = "bc"
