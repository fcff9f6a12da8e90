"""The SB3 agent's loop hooks: a callback and a logger output tying an SB3 model to its run.

SB3's ``learn`` is the loop; :class:`RunCallback` hangs rlseek's shared loop
(:class:`~rlseek.agents.loop.TrainingLoop`) on it. Its hooks, in the order SB3 calls them:

* ``_on_training_start`` — re-arm the eval/checkpoint cadences at the model's step count;
* ``_on_rollout_start`` — evaluation every ``run.eval_every`` env steps with
  :func:`rlseek.evaluation.evaluate_episodes` on a separate, unvectorized env (deterministic
  actions, fixed seeds), logged as ``eval/mean_return`` and ``eval/success_rate`` and kept as the
  learning curve; checkpoints every ``run.checkpoint_every`` env steps; the previous
  iteration's ``latency/train_seconds`` (its gradient steps);
* ``_on_step`` — ``reward/<term>`` (per-episode sums of the unweighted ``info["reward_<term>"]``
  values), ``time/sps``, the progress bar; SB3 itself logs ``rollout/success_rate`` (over its
  last 100 episodes) for envs that report ``is_success``;
* ``_on_rollout_end`` — ``latency/rollout_seconds``, throughput and resources.

Every key SB3 or the callback records reaches TensorBoard *and* MLflow through
:class:`LoopOutputFormat`, an SB3 output format writing to the loop's one logger.

Evaluation and checkpoints happen at the *start* of a rollout, i.e. after the previous
rollout's gradient updates: at that moment every env step counted in ``num_timesteps`` has been
stored (off-policy) and trained on, so a checkpoint's step count means exactly what it says and
a resumed run neither repeats nor skips work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter

from rlseek.agents.loop import TrainingLoop
from rlseek.evaluation import EVAL_SEED_OFFSET, EvalResult, evaluate_episodes

__all__ = ["EVAL_SEED_OFFSET", "RunCallback", "evaluate_model", "policy_of"]


def policy_of(model: Any) -> Callable[[Any], Any]:
    """The deterministic policy ``obs -> action`` of an SB3 model, for one unbatched obs."""

    def act(obs: Any) -> Any:
        action, _ = model.predict(obs, deterministic=True)
        return action

    return act


def evaluate_model(model: Any, env: gym.Env, episodes: int, seed: int) -> EvalResult:
    """Evaluate an SB3 model's deterministic policy on ``env`` (episode ``i`` seeded ``seed + i``)."""
    return evaluate_episodes(env, policy_of(model), episodes, seed=seed)


class LoopOutputFormat(KVWriter):
    """An SB3 logger output that writes SB3's numeric records through the loop's one logger
    (TensorBoard + MLflow); records SB3 excludes from "tensorboard" are left out here too."""

    def __init__(self, loop: TrainingLoop) -> None:
        self.loop = loop

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        scalars = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key) or ()
            if "tensorboard" in excluded or isinstance(value, (str, bool)):
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) or (
                hasattr(value, "ndim") and getattr(value, "ndim", 1) == 0
            ):
                scalars[key] = float(value)
        self.loop.log(scalars, step)
        self.loop.logger.flush()

    def close(self) -> None:
        self.loop.logger.flush()


class RunCallback(BaseCallback):
    """Evaluation, checkpoints, reward-term logging and monitoring for one rlseek run.

    Args:
        loop: the run's shared loop (cadences, logger, progress bar, clock).
        eval_env: a single env used only for evaluation.
        save: ``save(folder)`` writes the model (and replay buffer) into a checkpoint folder.
        curve: evaluation points so far, ``[[steps, mean_return], ...]`` (restored on resume).
        success_curve: ``[[steps, success_rate], ...]`` for goal tasks.
    """

    def __init__(
        self,
        loop: TrainingLoop,
        eval_env: gym.Env,
        save: Callable[[Any], None],
        curve: list[list[float]] | None = None,
        success_curve: list[list[float]] | None = None,
    ) -> None:
        super().__init__(verbose=0)
        self.loop = loop
        self.run = loop.run
        self.eval_env = eval_env
        self.save = save
        self.curve: list[list[float]] = list(curve or [])
        self.success_curve: list[list[float]] = list(success_curve or [])
        rs = self.run.config.run
        self.eval_episodes = int(rs.eval_episodes)
        self.eval_seed = int(rs.seed) + EVAL_SEED_OFFSET
        self._t0 = time.perf_counter()
        self._steps0 = 0
        self._ep_terms: list[dict[str, float]] = []
        self._rollout_t0: float | None = None
        self._rollout_steps0 = 0
        self._rollout_end: float | None = None
        self.continuing = False
        """Set by staged training (``run.stages``) after the first ``learn`` call, so the
        next one keeps the clock, the eval/checkpoint cadences and the episode sums."""

    # -- bookkeeping ----------------------------------------------------------------------
    def elapsed_s(self) -> float:
        """Training wall time of the whole run so far (earlier sessions included), seconds."""
        return self.loop.elapsed_s()

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps besides the model: the curves and the time spent."""
        return {
            "curve": self.curve,
            "success_curve": self.success_curve,
            "elapsed_s": self.elapsed_s(),
        }

    def _on_training_start(self) -> None:
        if self.continuing:  # a later stage's learn() call: same session, clock and cadences
            return
        self._t0 = time.perf_counter()
        self.loop.restart_clock()
        self._steps0 = self.model.num_timesteps
        n = self.model.num_timesteps
        self.loop.evals = type(self.loop.evals)(self.loop.evals.every, n)
        self.loop.checkpoints = type(self.loop.checkpoints)(self.loop.checkpoints.every, n)
        self._ep_terms = [{} for _ in range(self.training_env.num_envs)]

    # -- evaluation and checkpoints -------------------------------------------------------
    def evaluate_now(self) -> EvalResult:
        """Evaluate the current policy, log it, and append it to the curves."""
        steps = int(self.model.num_timesteps)
        result = evaluate_model(self.model, self.eval_env, self.eval_episodes, self.eval_seed)
        s = result.summary()
        self.logger.record("eval/mean_return", s["mean_return"])
        self.logger.record("eval/mean_length", s["mean_length"])
        if s["success_rate"] is not None:
            self.logger.record("eval/success_rate", s["success_rate"])
            self.logger.record("quality/success_rate", s["success_rate"])
            self.success_curve.append([steps, s["success_rate"]])
        for term, value in s["terms"].items():
            self.logger.record(f"eval/reward_{term}", value)
        self.curve.append([steps, s["mean_return"]])
        self.logger.dump(steps)
        return result

    def checkpoint_now(self) -> None:
        """Write a checkpoint of the current model at its step count."""
        steps = int(self.model.num_timesteps)
        self.run.save_checkpoint(steps, self.save, self.state())

    def _on_rollout_start(self) -> None:
        now = time.perf_counter()
        if self._rollout_end is not None:
            self.logger.record_mean("latency/train_seconds", now - self._rollout_end)
        n = self.model.num_timesteps
        if self.loop.eval_due(n):
            self.evaluate_now()
        if self.loop.checkpoint_due(n):
            self.checkpoint_now()
        self._rollout_t0 = time.perf_counter()
        self._rollout_steps0 = n

    def _on_rollout_end(self) -> None:
        now = time.perf_counter()
        if self._rollout_t0 is None:
            return
        rollout_s = now - self._rollout_t0
        mon = self.loop.monitoring(rollout_s=rollout_s,
                                   items=self.model.num_timesteps - self._rollout_steps0)
        mon.pop("latency/iteration_seconds", None)
        mon.pop("throughput/steps_per_second", None)  # the rollout alone; time/sps covers both
        for key, value in mon.items():
            if key.startswith("latency/"):
                self.logger.record_mean(key, value)
            else:
                self.logger.record(key, value)
        self._rollout_end = now

    # -- per-step logging -----------------------------------------------------------------
    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or ()
        dones = self.locals.get("dones")
        self.loop.advance(int(self.model.num_timesteps))
        for i, info in enumerate(infos):
            acc = self._ep_terms[i]
            for key, value in info.items():
                if key.startswith("reward_") and key != "reward_total" and np.ndim(value) == 0:
                    acc[key[7:]] = acc.get(key[7:], 0.0) + float(value)
            if dones is not None and dones[i]:
                for term, total in acc.items():
                    self.logger.record_mean(f"reward/{term}", total)
                acc.clear()
                dt = time.perf_counter() - self._t0
                if dt > 0:
                    sps = (self.model.num_timesteps - self._steps0) / dt
                    self.logger.record("time/sps", sps)
                    self.logger.record("throughput/steps_per_second", sps)
        return True
