"""Online RL agents for robot control, on stable-baselines3: ppo, sac, td3, a2c, dqn, sac-her.

``agent.params`` are the SB3 constructor's keyword arguments (plus ``policy``; default
``MlpPolicy``, or ``MultiInputPolicy`` for dict observations). They are checked against the
constructor's signature and by building a model once, before the run directory is written, so
a typo fails with a did-you-mean instead of a traceback halfway into training. A few YAML-friendly
forms are translated:

* ``action_noise: {type: normal, sigma: 0.1}`` (or ``ornstein-uhlenbeck``) builds SB3's action
  noise with that σ on every action dimension (actions are normalized to [-1, 1]);
* ``policy_kwargs: {activation_fn: relu}`` names the torch activation (relu, tanh, elu,
  leaky_relu, gelu, silu);
* ``policy_kwargs: {moe: {experts: 4, top_k: 2, balance_coef: 0.01}}`` (ppo, a2c) makes the
  actor and critic mixture-of-experts blocks (:mod:`rlseek.agents.sb3_moe`);
* numbers written as strings (PyYAML reads ``3e-4`` as text) are converted where SB3 expects a number.

``run.stages`` (:mod:`rlseek.agents.sb3_stages`) sets the rollout size (on-policy) or the
minibatch (off-policy) per stage, optionally with a curriculum.

``run`` settings: ``total_steps`` env steps (all vectorized envs together; SB3 may overshoot to
finish a rollout), ``n_envs`` with ``vec_env`` dummy|subproc, ``seed``, ``device``,
``eval_every``/``eval_episodes`` and ``checkpoint_every``/``keep_checkpoints`` in env steps.
Off-policy agents default ``buffer_size`` to ``min(1e6, total_steps)``: a larger buffer could
never fill, and the smaller one keeps checkpoints small.

Files: an SB3 model zip holds pickled objects (schedules, spaces). rlseek loads model zips
only from run directories it wrote itself (checkpoints/ and final/ of a run with config.yaml and
meta.json); never point ``rlseek eval`` or ``--resume`` at a run directory from an untrusted
source. Replay buffers are checkpointed as ``.npz`` without pickles (:mod:`rlseek.agents.sb3_replay`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import io
import multiprocessing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

# gym 0.26 (a dependency of d3rlpy) prints a multi-line deprecation notice to stderr when SB3's
# compatibility shim imports it. rlseek never uses gym; keep stderr for rlseek's own messages.
with contextlib.redirect_stderr(io.StringIO()), contextlib.suppress(ImportError):
    import gym as _legacy_gym  # noqa: F401

from stable_baselines3 import A2C, DQN, PPO, SAC, TD3, HerReplayBuffer
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from rlseek.agents.base import Agent, AgentConfig, register_agent
from rlseek.agents.loop import TrainingLoop
from rlseek.agents.sb3_callbacks import (
    EVAL_SEED_OFFSET,
    LoopOutputFormat,
    RunCallback,
    evaluate_model,
)
from rlseek.agents.sb3_moe import MoELoadCallback, moe_policy
from rlseek.agents.sb3_replay import load_replay_buffer, save_replay_buffer
from rlseek.agents.sb3_stages import learn_in_stages
from rlseek.config import EnvSection, ExperimentConfig, RunSection
from rlseek.envs.factory import make_env, reward_fn_of
from rlseek.errors import RlseekError, did_you_mean
from rlseek.rewards import import_reward_modules
from rlseek.runs import Run, atomic_directory
from rlseek.runtime import resolve_device, set_torch_threads
from rlseek.stages import parse_stages

MODEL_FILE = "model.zip"
REPLAY_FILE = "replay_buffer.npz"

# Set by rlseek from the run section (or the agent itself); not accepted in agent.params.
_RESERVED = {
    "env": "the env comes from the env section",
    "seed": "set run.seed",
    "device": "set run.device",
    "tensorboard_log": "TensorBoard logs go to the run directory's tb/",
    "verbose": "rlseek sets it",
    "_init_setup_model": "rlseek sets it",
}
_ACTIVATIONS = {
    "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU, "gelu": torch.nn.GELU, "silu": torch.nn.SiLU,
}
_NOISES = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}


def _signature_defaults(cls: type) -> dict[str, Any]:
    """Constructor keyword -> default (``inspect.Parameter.empty`` when required)."""
    params = inspect.signature(cls.__init__).parameters
    return {n: p.default for n, p in params.items() if n not in ("self", "policy", "kwargs")}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Turn YAML text like ``"3e-4"`` into the number SB3 expects; reject non-numbers early."""
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if not numeric:
        return value
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise RlseekError(
                f"agent.params.{name} must be a number (default {default!r}), got {value!r}"
            ) from None
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _make_vec_env(env: EnvSection, imports: list[str], rs: RunSection) -> VecEnv:
    """``run.n_envs`` copies of the env in a Dummy/SubprocVecEnv, with episode statistics."""

    def factory() -> gym.Env:
        # Subprocess workers start fresh: user reward terms must be registered there too.
        import_reward_modules(imports)
        return make_env(env)

    fns = [factory] * int(rs.n_envs)
    if rs.vec_env != "subproc":
        return VecMonitor(DummyVecEnv(fns))
    # Workers fork from a server that has imported this module once: they start without
    # re-importing torch and SB3, and without the gym notice those imports print.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return VecMonitor(SubprocVecEnv(fns, start_method="forkserver"))


def _set_torch_threads(rs: RunSection) -> None:
    """Apply ``run.torch_threads`` (0: one thread, see RunSection) on CPU."""
    set_torch_threads(rs.device, rs.torch_threads, default=1)


def _loop_logger(loop: TrainingLoop) -> Logger:
    """SB3's logger, writing through the loop's one logger (TensorBoard + MLflow)."""
    loop.run.tb_dir.mkdir(parents=True, exist_ok=True)
    return Logger(folder=str(loop.run.tb_dir), output_formats=[LoopOutputFormat(loop)])


@dataclass
class SB3Config(AgentConfig):
    """``agent.params`` of an SB3 algo: its constructor's keyword arguments, with rlseek's
    defaults merged in and every name checked against the constructor's signature."""

    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, where: str = "agent.params") -> SB3Config:
        agent = cls.agent_class
        return cls(agent.check_params({**agent.defaults, **(params or {})}))

    def to_params(self) -> dict[str, Any]:
        return copy.deepcopy(self.kwargs)


class SB3Agent(Agent):
    """An SB3 algorithm behind ``rlseek train``/``eval``; subclasses set the class and defaults."""

    config_class: ClassVar[type[AgentConfig]] = SB3Config
    params: SB3Config

    sb3_class: ClassVar[type[BaseAlgorithm]]
    defaults: ClassVar[dict[str, Any]] = {}
    """rlseek's defaults where they differ from SB3's (written into the run's config.yaml)."""
    needs_discrete: ClassVar[bool] = False
    her: ClassVar[bool] = False

    @property
    def off_policy(self) -> bool:
        return issubclass(self.sb3_class, OffPolicyAlgorithm)

    # -- config ---------------------------------------------------------------------------
    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against the SB3 constructor's signature (numbers coerced)."""
        known = _signature_defaults(cls.sb3_class)
        out: dict[str, Any] = {}
        for name, value in params.items():
            if name in _RESERVED:
                raise RlseekError(f"agent.params.{name} is not accepted: {_RESERVED[name]}")
            if name == "replay_buffer_class":
                raise RlseekError(
                    "agent.params.replay_buffer_class is not accepted: use algo 'sac-her' for HER"
                )
            if name != "policy" and name not in known:
                raise RlseekError(
                    f"unknown agent.params.{name} for algo '{cls.algo}'"
                    f"{did_you_mean(name, known)}; {cls.sb3_class.__name__} takes: "
                    f"policy, {', '.join(n for n in known if n not in _RESERVED)}"
                )
            out[name] = value if name == "policy" else _coerce(name, value, known[name])
        return out

    def _check_env(self, env: gym.Env) -> None:
        if self.needs_discrete and not isinstance(env.action_space, gym.spaces.Discrete):
            raise RlseekError(
                f"algo '{self.algo}' needs a discrete action space, but env "
                f"'{self.config.env.id}' has {env.action_space}; use sac, td3 or ppo instead"
            )
        if self.her:
            obs = env.observation_space
            keys = set(obs.spaces) if isinstance(obs, gym.spaces.Dict) else set()
            if not {"observation", "achieved_goal", "desired_goal"} <= keys:
                raise RlseekError(
                    f"algo '{self.algo}' needs a goal-conditioned env (dict observation with "
                    f"observation, achieved_goal, desired_goal), but '{self.config.env.id}' has "
                    f"{obs}; try rlseek/FetchReach-v0, or algo 'sac'"
                )

    def resolve_config(self, config: ExperimentConfig) -> ExperimentConfig:
        """Fill in ``agent.params`` (rlseek's defaults, the replay buffer size, the policy for
        the env's observation space) and the env's reward weights and term params (from the
        env's declared defaults), so that config.yaml records what was used."""
        from rlseek.envs.factory import resolve_reward

        self.config = config
        params = dict(self.params.kwargs)
        if self.off_policy and "buffer_size" not in params:
            known = _signature_defaults(self.sb3_class)
            params["buffer_size"] = min(int(known["buffer_size"]), int(config.run.total_steps))
        env = make_env(config.env)
        try:
            self._check_env(env)
            if "policy" not in params:
                is_dict = isinstance(env.observation_space, gym.spaces.Dict)
                params["policy"] = "MultiInputPolicy" if is_dict else "MlpPolicy"
            resolved = dataclasses.replace(
                config, env=resolve_reward(config.env),
                agent=dataclasses.replace(config.agent, params=params),
            )
            # Build the model once: SB3 rejects bad values (types, policy names, net_arch) here,
            # before a run directory exists, rather than after the first rollout.
            self.config = resolved
            self.params = self.config_class(kwargs=params)
            self._build_model(DummyVecEnv([lambda: env]), resolved.run)
        finally:
            env.close()
        return resolved

    def _sb3_kwargs(self, env: VecEnv) -> tuple[str, dict[str, Any]]:
        # SB3 edits some kwargs in place (policy_kwargs gains use_sde); keep the config intact.
        params = copy.deepcopy(self.config.agent.params)
        policy = params.pop("policy", "MlpPolicy")
        noise = params.get("action_noise")
        if isinstance(noise, dict):
            kind = str(noise.get("type", "normal"))
            if kind not in _NOISES or set(noise) - {"type", "sigma"}:
                raise RlseekError(
                    f"agent.params.action_noise must look like {{type: normal|ornstein-uhlenbeck, "
                    f"sigma: 0.1}}, got {noise!r}"
                )
            dim = int(np.prod(env.action_space.shape))
            sigma = float(noise.get("sigma", 0.1))
            params["action_noise"] = _NOISES[kind](np.zeros(dim), sigma * np.ones(dim))
        pk = params.get("policy_kwargs")
        if isinstance(pk, dict) and isinstance(pk.get("activation_fn"), str):
            name = pk["activation_fn"]
            if name not in _ACTIVATIONS:
                raise RlseekError(
                    f"agent.params.policy_kwargs.activation_fn '{name}' is unknown"
                    f"{did_you_mean(name, _ACTIVATIONS)}; known: {', '.join(_ACTIVATIONS)}"
                )
            params["policy_kwargs"] = pk = {**pk, "activation_fn": _ACTIVATIONS[name]}
        if isinstance(pk, dict) and "moe" in pk:
            policy, params["policy_kwargs"] = moe_policy(self.algo, policy, pk)
        if self.her:
            params["replay_buffer_class"] = HerReplayBuffer
            params["replay_buffer_kwargs"] = {
                "n_sampled_goal": 4, "goal_selection_strategy": "future",
                **(params.get("replay_buffer_kwargs") or {}),
            }
        return policy, params

    def _policy_kwargs(self) -> dict[str, Any]:
        pk = self.config.agent.params.get("policy_kwargs")
        return pk if isinstance(pk, dict) else {}

    def _build_model(self, env: VecEnv, rs: RunSection) -> BaseAlgorithm:
        policy, kwargs = self._sb3_kwargs(env)
        try:
            return self.sb3_class(policy, env, seed=rs.seed, device=rs.device, verbose=0, **kwargs)
        except (TypeError, ValueError, KeyError, AssertionError) as exc:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise RlseekError(f"agent.params rejected by {self.sb3_class.__name__}: {msg}") from None

    def _load_model(self, path: Path, env: VecEnv, device: str) -> BaseAlgorithm:
        try:
            return self.sb3_class.load(path, env=env, device=device)
        except ValueError as exc:  # spaces of the env differ from the saved model's
            raise RlseekError(f"cannot use {path} on env '{self.config.env.id}': {exc}") from None

    # -- training -------------------------------------------------------------------------
    def train(self, run: Run, *, resume: bool = False, progress: bool = False) -> dict[str, Any]:
        """Train to ``run.total_steps`` env steps, evaluate, and return the summary figures.

        With ``resume`` the newest checkpoint's model (optimizer state included), replay buffer,
        step count, curve and elapsed time are restored and training continues where it
        stopped (``reset_num_timesteps=False``); the envs are re-seeded with ``seed + step``.
        """
        cfg = run.config
        self.config = cfg
        rs = cfg.run
        _set_torch_threads(rs)
        venv = _make_vec_env(cfg.env, cfg.imports, rs)
        eval_env = make_env(cfg.env)
        try:
            return self._train(run, venv, eval_env, resume, progress)
        finally:
            venv.close()
            eval_env.close()

    def _train(
        self, run: Run, venv: VecEnv, eval_env: gym.Env, resume: bool, progress: bool
    ) -> dict[str, Any]:
        rs = run.config.run
        state: dict[str, Any] = {}
        resumed_from = None
        if resume:
            ckpt = run.latest_checkpoint()
            if ckpt is None:
                raise RlseekError(f"{run.path} has no complete checkpoint to resume from")
            model = self._load_model(ckpt.path / MODEL_FILE, venv, rs.device)
            if self.off_policy and (ckpt.path / REPLAY_FILE).is_file():
                load_replay_buffer(model.replay_buffer, ckpt.path / REPLAY_FILE)
            model.set_random_seed(rs.seed + model.num_timesteps)
            state, resumed_from = ckpt.state, ckpt.step
        else:
            model = self._build_model(venv, rs)
        self._hooks = None
        if self.continual is not None:  # one task of a sequence: see rlseek.continual.robot
            from rlseek.continual.robot import SB3Continual

            self._hooks = SB3Continual(self.continual)
            self._hooks.attach(model, resume, MODEL_FILE)
        loop = TrainingLoop(
            run, unit="env steps", total=int(rs.total_steps), start=int(model.num_timesteps),
            progress=progress, desc=self.algo, device=resolve_device(rs.device),
            elapsed_s=float(state.get("elapsed_s", 0.0)),
            eval_every=max(1, int(rs.eval_every)), checkpoint_every=max(1, int(rs.checkpoint_every)),
        )
        try:
            return self._learn(run, model, loop, venv, eval_env, state, resume, resumed_from)
        finally:
            loop.close()

    def _learn(self, run: Run, model: BaseAlgorithm, loop: TrainingLoop, venv: VecEnv,
               eval_env: gym.Env, state: dict[str, Any], resume: bool,
               resumed_from: int | None) -> dict[str, Any]:
        rs = run.config.run
        model.set_logger(_loop_logger(loop))

        def save(folder: Path) -> None:
            model.save(Path(folder) / MODEL_FILE)
            if self.off_policy:
                save_replay_buffer(model.replay_buffer, Path(folder) / REPLAY_FILE)

        cb = RunCallback(loop, eval_env, save, curve=state.get("curve"),
                         success_curve=state.get("success_curve"))
        steps_before = int(model.num_timesteps)
        remaining = int(rs.total_steps) - steps_before
        callbacks = [cb, MoELoadCallback()] if "moe" in self._policy_kwargs() else [cb]
        extra: dict[str, Any] = {}
        stages = parse_stages(rs.stages, int(rs.total_steps), "run.stages")
        if remaining > 0 and stages:
            params = run.config.agent.params
            extra["stages"] = learn_in_stages(
                model, stages, callbacks, total=int(rs.total_steps), fresh=not resume,
                minibatch=params.get("batch_size", _signature_defaults(self.sb3_class).get("batch_size")),
                env_id=run.config.env.id, level=run.config.env.kwargs.get("level"))
        elif remaining > 0:
            model.learn(total_timesteps=remaining, callback=callbacks,
                        reset_num_timesteps=not resume)
        else:
            cb.init_callback(model)
        steps = int(model.num_timesteps)
        if run.latest_checkpoint() is None or run.latest_checkpoint().step != steps:
            cb.checkpoint_now()
        with atomic_directory(run.final_dir) as tmp:
            model.save(tmp / MODEL_FILE)
        wall = cb.elapsed_s()
        final = evaluate_model(model, eval_env, rs.eval_episodes, rs.seed + EVAL_SEED_OFFSET)
        ev = final.summary()
        curve = list(cb.curve)
        if not curve or curve[-1][0] != steps:
            curve.append([steps, ev["mean_return"]])
            if ev["success_rate"] is not None:
                cb.success_curve.append([steps, ev["success_rate"]])
        model.logger.record("eval/mean_return", ev["mean_return"])
        if ev["success_rate"] is not None:
            model.logger.record("eval/success_rate", ev["success_rate"])
            model.logger.record("quality/success_rate", ev["success_rate"])
        model.logger.dump(steps)
        model.logger.close()
        if self._hooks is not None:
            extra["continual"] = self._hooks.finish(model)
        if cb.success_curve:
            extra["success_curve"] = cb.success_curve
        return loop.summary(
            algo=self.algo, steps=steps, eval=ev, resumed_from=resumed_from, wall_time_s=wall,
            total_steps=steps, curve=curve, reward=dict(run.config.env.reward or {}),
            final_model=f"{run.final_dir.name}/{MODEL_FILE}", **extra,
        )

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, run: Run, *, episodes: int | None = None) -> dict[str, Any]:
        """Evaluate ``final/model.zip`` (or the newest checkpoint's model) on
        ``self.config.env`` — which may differ from the training env's reward weights — with
        the run's evaluation seeds, so an unchanged config reproduces summary.json's eval."""
        _set_torch_threads(self.config.run)
        path = run.final_dir / MODEL_FILE
        if not path.is_file():
            ckpt = run.latest_checkpoint()
            if ckpt is None or not (ckpt.path / MODEL_FILE).is_file():
                raise RlseekError(f"{run.path} has no final/{MODEL_FILE} and no checkpoint to evaluate")
            path = ckpt.path / MODEL_FILE
        n = int(episodes if episodes is not None else self.config.run.eval_episodes)
        env = make_env(self.config.env)
        try:
            self._check_env(env)
            # HER models need an env to rebuild their replay buffer when loading.
            model = self._load_model(path, DummyVecEnv([lambda: env]), "cpu")
            seed = int(self.config.run.seed) + EVAL_SEED_OFFSET
            result = evaluate_model(model, env, n, seed).summary()
            wr = reward_fn_of(env)
        finally:
            env.close()
        result.update(
            model=str(path.relative_to(run.path)),
            steps=int(model.num_timesteps),
            env_id=self.config.env.id,
            reward=dict(wr.weights) if wr is not None else None,
            seed=seed,
        )
        return result


@register_agent("ppo")
class PPOAgent(SB3Agent):
    """Proximal Policy Optimization (SB3 ``PPO``), on-policy, any action space.

    rlseek defaults: discount γ = 0.99, GAE λ = 0.95, entropy coefficient 0.01 (SB3's is 0).
    ``target_kl`` has SB3's meaning: an early stop of the epoch loop once a minibatch's
    approximate KL to the rollout policy exceeds 1.5 × target_kl; it is *not* a KL penalty.
    """

    sb3_class = PPO
    defaults: ClassVar[dict[str, Any]] = {"gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01}


@register_agent("a2c")
class A2CAgent(SB3Agent):
    """Advantage Actor-Critic (SB3 ``A2C``), on-policy, synchronous; any action space."""

    sb3_class = A2C


@register_agent("sac")
class SACAgent(SB3Agent):
    """Soft Actor-Critic (SB3 ``SAC``), off-policy, continuous (Box) actions; supports
    continual learning (``run.tasks`` with replay and EWC, :mod:`rlseek.continual.robot`)."""

    sb3_class = SAC
    supports_continual = True


@register_agent("td3")
class TD3Agent(SB3Agent):
    """Twin Delayed DDPG (SB3 ``TD3``), off-policy, continuous actions.

    Explore with ``action_noise: {type: normal, sigma: 0.1}``; SB3's default is no noise.
    """

    sb3_class = TD3


@register_agent("dqn")
class DQNAgent(SB3Agent):
    """Deep Q-Network (SB3 ``DQN``), off-policy; needs a discrete (``Discrete``) action space."""

    sb3_class = DQN
    needs_discrete = True


@register_agent("sac-her")
class SACHERAgent(SB3Agent):
    """SAC with Hindsight Experience Replay (SB3 ``HerReplayBuffer``) for goal-conditioned envs.

    Needs a dict observation (observation, achieved_goal, desired_goal) and an env
    ``compute_reward(achieved_goal, desired_goal, info)`` that works on batches, as
    rlseek/FetchReach-v0 and FetchPush-v0 provide. ``replay_buffer_kwargs`` default to
    4 relabelled goals per transition with the "future" strategy.
    """

    sb3_class = SAC
    her = True
