"""The stable-baselines3 callback that ties an SB3 model to an rlseek run directory.

:class:`RunCallback` does three jobs during ``model.learn``:

* evaluation every ``run.eval_every`` env steps with :func:`rlseek.evaluation.evaluate_episodes`
  on a separate, unvectorized env (deterministic actions, fixed seeds), logged to TensorBoard
  as ``eval/mean_return`` and ``eval/success_rate`` and kept as the learning curve;
* checkpoints every ``run.checkpoint_every`` env steps through ``run.save_checkpoint``;
* TensorBoard logging of ``reward/<term>`` (per-episode sums of the unweighted
  ``info["reward_<term>"]`` values) and ``time/sps``; SB3 itself logs ``rollout/success_rate``
  (over its last 100 episodes) for envs that report ``is_success``.

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

from rlseek.evaluation import EVAL_SEED_OFFSET, EvalResult, evaluate_episodes
from rlseek.runs import Run

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


class RunCallback(BaseCallback):
    """Evaluation, checkpoints and reward-term logging for one rlseek run (module docstring).

    Args:
        run: the run directory; its config's ``run`` section sets the cadences.
        eval_env: a single env used only for evaluation.
        save: ``save(folder)`` writes the model (and replay buffer) into a checkpoint folder.
        curve: evaluation points so far, ``[[steps, mean_return], ...]`` (restored on resume).
        success_curve: ``[[steps, success_rate], ...]`` for goal tasks.
        elapsed_s: training wall time already spent before this session, in seconds.
    """

    def __init__(
        self,
        run: Run,
        eval_env: gym.Env,
        save: Callable[[Any], None],
        curve: list[list[float]] | None = None,
        success_curve: list[list[float]] | None = None,
        elapsed_s: float = 0.0,
    ) -> None:
        super().__init__(verbose=0)
        self.run = run
        self.eval_env = eval_env
        self.save = save
        self.curve: list[list[float]] = list(curve or [])
        self.success_curve: list[list[float]] = list(success_curve or [])
        self.elapsed_before_s = float(elapsed_s)
        rs = run.config.run
        self.eval_every = max(1, int(rs.eval_every))
        self.checkpoint_every = max(1, int(rs.checkpoint_every))
        self.eval_episodes = int(rs.eval_episodes)
        self.eval_seed = int(rs.seed) + EVAL_SEED_OFFSET
        self._t0 = time.perf_counter()
        self._steps0 = 0
        self._next_eval = self.eval_every
        self._next_ckpt = self.checkpoint_every
        self._ep_terms: list[dict[str, float]] = []

    # -- bookkeeping ----------------------------------------------------------------------
    def elapsed_s(self) -> float:
        """Training wall time of the whole run so far (earlier sessions included), seconds."""
        return self.elapsed_before_s + (time.perf_counter() - self._t0)

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps besides the model: the curves and the time spent."""
        return {
            "curve": self.curve,
            "success_curve": self.success_curve,
            "elapsed_s": self.elapsed_s(),
        }

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        self._steps0 = self.model.num_timesteps
        n = self.model.num_timesteps
        self._next_eval = (n // self.eval_every + 1) * self.eval_every
        self._next_ckpt = (n // self.checkpoint_every + 1) * self.checkpoint_every
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
        n = self.model.num_timesteps
        if n >= self._next_eval:
            self.evaluate_now()
            self._next_eval = (n // self.eval_every + 1) * self.eval_every
        if n >= self._next_ckpt:
            self.checkpoint_now()
            self._next_ckpt = (n // self.checkpoint_every + 1) * self.checkpoint_every

    # -- per-step logging -----------------------------------------------------------------
    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or ()
        dones = self.locals.get("dones")
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
                    self.logger.record("time/sps", (self.model.num_timesteps - self._steps0) / dt)
        return True
