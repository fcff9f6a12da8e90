"""``run.stages`` for the SB3 agents: one ``learn`` call per stage, batch size set in between.

See :mod:`rlseek.stages` for the stage format. Here a stage's ``batch_size`` is the
rollout size of on-policy algos (``n_steps = batch_size // n_envs``, the rollout buffer rebuilt;
PPO's minibatch stays the configured one, capped at the rollout) and the gradient minibatch of
off-policy algos. A curriculum stage sets every env copy to level 0 and promotes all copies
together by :class:`~rlseek.stages.CurriculumRule` over the episodes they finish, up
to the configured level (``env.kwargs.level``, else the native task); the stage after it
returns the envs to the configured level. Evaluation always plays the
configured level, so scores from all stages compare. SB3 finishes a rollout before it checks
the step budget, so an on-policy stage may run up to one rollout past its end (the next stage
is shorter by as much).
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rlseek.errors import RlseekError
from rlseek.stages import CurriculumRule, Stage, stage_end, stage_index


def apply_stage(model: BaseAlgorithm, stage: Stage, minibatch: int | None) -> None:
    """Set ``model``'s batch size for ``stage`` (see the module docstring)."""
    if isinstance(model, OnPolicyAlgorithm):
        n_steps = max(1, stage.batch_size // model.n_envs)
        if n_steps != model.n_steps:
            model.n_steps = n_steps
            model.rollout_buffer = model.rollout_buffer_class(
                n_steps, model.observation_space, model.action_space, device=model.device,
                gamma=model.gamma, gae_lambda=model.gae_lambda, n_envs=model.n_envs,
                **(model.rollout_buffer_kwargs or {}))
        if hasattr(model, "batch_size") and minibatch is not None:
            model.batch_size = min(int(minibatch), n_steps * model.n_envs)
    else:
        model.batch_size = int(stage.batch_size)


class StageCurriculumCallback(BaseCallback):
    """Promote the env copies' level while a curriculum stage runs; logs ``curriculum/level``."""

    def __init__(self, stage: Stage, num_levels: int) -> None:
        super().__init__(verbose=0)
        self.rule = CurriculumRule(num_levels, stage.threshold, stage.window)

    def _on_training_start(self) -> None:
        self.training_env.env_method("set_level", 0)

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and self.rule.observe(bool(info.get("is_success", False))) is not None:
                self.training_env.env_method("set_level", self.rule.level)
        self.logger.record("curriculum/level", self.rule.level)
        return True


def _num_levels(model: BaseAlgorithm, env_id: str) -> int:
    try:
        return int(model.get_env().get_attr("num_levels")[0])
    except AttributeError:
        raise RlseekError(f"run.stages: curriculum needs an env with curriculum levels "
                          f"(rlseek/Reacher-v0, rlseek/FetchReach-v0); '{env_id}' has none") from None


def learn_in_stages(model: BaseAlgorithm, stages: list[Stage], callbacks: list[BaseCallback],
                    *, total: int, fresh: bool, minibatch: int | None, env_id: str,
                    level: int | None) -> list[dict[str, Any]]:
    """Run the stages from the model's current step to ``total``; returns one record per stage
    run (``index``, ``batch_size``, ``start``/``end`` env steps, ``promotions``)."""
    records = []
    first = True
    while int(model.num_timesteps) < total:
        i = stage_index(stages, int(model.num_timesteps))
        stage = stages[i]
        apply_stage(model, stage, minibatch)
        cbs = list(callbacks)
        curriculum = None
        if stage.curriculum or any(s.curriculum for s in stages[:i]):
            top = _num_levels(model, env_id) - 1 if level is None else int(level)
            if stage.curriculum:
                curriculum = StageCurriculumCallback(stage, top + 1)
                cbs.append(curriculum)
            else:
                model.get_env().env_method("set_level", top)
        start = int(model.num_timesteps)
        end = min(total, stage_end(stages, i))
        model.learn(total_timesteps=end - start, callback=cbs,
                    reset_num_timesteps=fresh and first)
        first = False
        for cb in callbacks:  # the next stage continues this session (clock, cadences)
            if hasattr(cb, "continuing"):
                cb.continuing = True
        records.append({"index": i, "batch_size": stage.batch_size, "curriculum": stage.curriculum,
                        "start": start, "end": int(model.num_timesteps),
                        "promotions": curriculum.rule.promotions if curriculum else []})
    return records
