"""Policies loaded from run directories for serving: robot (SB3) and text (causal LM).

A served policy turns a list of validated request rows into a list of answers in one batch
(:meth:`run_batch`, called by the batcher's worker thread) and checks raw request rows
(:meth:`validate`, raising :class:`InputError` with one clear message).

Loading: only the ``final/`` policy of a finished rlseek run directory (``config.yaml`` and
``meta.json`` present, status finished). SB3's ``model.zip`` holds pickles, so never serve a run
directory you did not produce yourself; language models are read from safetensors.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlseek.errors import RlseekError
from rlseek.runs import Run

QUANTIZE_CHOICES = ("none", "int8")


class InputError(ValueError):
    """A request row is malformed; the message says what, where and what would be right."""


def quantize_int8(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every ``nn.Linear`` (weights int8, activations quantized
    per batch at run time; CPU only). Returns a quantized copy; ``module`` is untouched.

    torch marks ``torch.ao.quantization`` deprecated in favour of torchao; its
    ``quantize_dynamic`` still works on this torch and needs no extra dependency, so its
    deprecation warnings are silenced here.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=False)


def state_dict_bytes(module: nn.Module) -> int:
    """Size in bytes of ``module``'s state dict as ``torch.save`` writes it (the model size)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(module.state_dict(), buf)
    return buf.getbuffer().nbytes


def agent_class(algo: str) -> type:
    """The agent class of ``algo``, importing only the agent module that registers it (the
    offline agents pull in d3rlpy, which a server of SB3 or lm-ppo policies does not need)."""
    import importlib

    from rlseek.agents import base

    for mod in ("rlseek.agents.sb3", "rlseek.agents.lm_ppo", "rlseek.agents.lm_grpo"):
        if algo in base._AGENTS:
            break
        importlib.import_module(mod)
    return base._AGENTS[algo] if algo in base._AGENTS else base.get_agent_class(algo)


def _open_finished_run(run_dir: str | Path) -> Run:
    run = Run.open(run_dir)
    if run.meta.get("status") != "finished":
        raise RlseekError(f"{run_dir} is not a finished run (meta.json status is "
                          f"{run.meta.get('status')!r}); serve a run that `rlseek train` finished")
    return run


def _finite_array(value: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where} must be an array of numbers, got {str(value)[:60]}") from None
    if not np.isfinite(arr).all():
        raise InputError(f"{where} contains a non-finite number (NaN or infinity); send finite numbers")
    return arr


class RobotPolicy:
    """An SB3 policy (ppo, sac, td3, a2c, dqn, sac-her) answering observation → action.

    Actions are deterministic (the policy's mean / argmax), as rlseek's evaluation uses them.
    """

    kind = "robot"

    def __init__(self, run_dir: str | Path, *, quantize: str = "none") -> None:
        import gymnasium as gym
        from stable_baselines3.common.vec_env import DummyVecEnv

        from rlseek.agents.sb3 import MODEL_FILE, SB3Agent
        from rlseek.envs.factory import make_env
        from rlseek.rewards import import_reward_modules

        run = _open_finished_run(run_dir)
        cfg = run.config
        agent_cls = agent_class(cfg.agent.algo)
        if not issubclass(agent_cls, SB3Agent):
            raise RlseekError(f"{run_dir} was trained with algo '{cfg.agent.algo}', not an SB3 robot agent")
        path = run.final_dir / MODEL_FILE
        if not path.is_file():
            raise RlseekError(f"{run_dir} has no final/{MODEL_FILE}")
        import_reward_modules(cfg.imports)
        env = make_env(cfg.env)
        try:
            # HER models need the env to rebuild their replay buffer class when loading.
            model = agent_cls.sb3_class.load(path, env=DummyVecEnv([lambda: env]), device="cpu")
        finally:
            env.close()
        self.run_dir = Path(run_dir)
        self.env_id = cfg.env.id
        self.algo = cfg.agent.algo
        self.observation_space = model.observation_space
        self.action_space = model.action_space
        self.model = model
        self.dict_obs = isinstance(self.observation_space, gym.spaces.Dict)
        self.fp32_bytes = state_dict_bytes(self.acting_module)
        self.quantize = quantize
        if quantize == "int8":
            self._quantize()
        self.model_bytes = state_dict_bytes(self.acting_module)

    @property
    def acting_module(self) -> nn.Module:
        """The network that chooses actions (SAC/TD3: the actor; PPO/A2C/DQN: the policy)."""
        pol = self.model.policy
        return pol.actor if hasattr(pol, "actor") and pol.actor is not None else pol

    def _quantize(self) -> None:
        pol = self.model.policy
        if hasattr(pol, "actor") and pol.actor is not None:
            pol.actor = quantize_int8(pol.actor)
        else:
            self.model.policy = quantize_int8(pol)

    def describe(self) -> dict[str, Any]:
        """What /healthz reports about this policy."""
        space = self.observation_space
        shape = ({k: list(s.shape) for k, s in space.spaces.items()} if self.dict_obs
                 else list(space.shape))
        return {"kind": self.kind, "run": str(self.run_dir), "env_id": self.env_id,
                "algo": self.algo, "observation_shape": shape, "quantize": self.quantize,
                "model_bytes": self.model_bytes}

    def validate(self, obs: Any, where: str = "observation") -> Any:
        """Check one observation against the observation space; returns it as arrays."""
        if self.dict_obs:
            if not isinstance(obs, dict):
                raise InputError(f"{where} must be an object with keys {sorted(self.observation_space.spaces)}")
            missing = set(self.observation_space.spaces) - set(obs)
            extra = set(obs) - set(self.observation_space.spaces)
            if missing or extra:
                raise InputError(f"{where} keys must be {sorted(self.observation_space.spaces)}; "
                                 f"missing {sorted(missing)}, unexpected {sorted(extra)}")
            return {k: self._check_box(obs[k], s, f"{where}.{k}")
                    for k, s in self.observation_space.spaces.items()}
        return self._check_box(obs, self.observation_space, where)

    @staticmethod
    def _check_box(value: Any, space: Any, where: str) -> np.ndarray:
        arr = _finite_array(value, where)
        if arr.shape != tuple(space.shape):
            raise InputError(f"{where} has shape {list(arr.shape)}; this policy expects {list(space.shape)}")
        return arr.astype(space.dtype, copy=False)

    def run_batch(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Deterministic actions for a batch of validated observations, in one forward pass."""
        if self.dict_obs:
            obs: Any = {k: np.stack([r[k] for r in rows]) for k in self.observation_space.spaces}
        else:
            obs = np.stack(rows)
        with torch.inference_mode():
            actions, _ = self.model.predict(obs, deterministic=True)
        return [{"action": np.asarray(a).tolist()} for a in actions]


@dataclass
class TextRow:
    """One validated prompt of a /v1/generate request."""

    prompt: str
    answer: str | None
    temperature: float


class TextPolicy:
    """A causal LM trained by lm-ppo, lm-grpo or lm-rloo answering prompt → completion,
    through the run's text env.

    Completions are generated by the same KV-cached rollout as training and evaluation, and
    tokenized, stopped (EOS or the env's ``max_new_tokens``) and scored by the run's env.
    """

    kind = "text"

    def __init__(self, run_dir: str | Path, *, quantize: str = "none", seed: int = 0) -> None:
        from transformers.utils import logging as hf_logging

        from rlseek.envs.factory import check_env_id, env_make_kwargs
        from rlseek.envs.text import get_task, make_text_vector_env
        from rlseek.models.loader import load_causal_lm
        from rlseek.rewards import import_reward_modules

        run = _open_finished_run(run_dir)
        cfg = run.config
        if agent_class(cfg.agent.algo).env_kind != "text":
            raise RlseekError(f"{run_dir} was trained with algo '{cfg.agent.algo}', not a language-model agent")
        if not (run.final_dir / "config.json").is_file():
            raise RlseekError(f"{run_dir} has no final/ model (config.json missing)")
        import_reward_modules(cfg.imports)
        check_env_id(cfg.env.id)
        kwargs = env_make_kwargs(cfg.env)
        kwargs.setdefault("model", cfg.agent.params.get("model", "rlseek/tiny-lm"))
        kwargs.pop("prompts_file", None)  # prompts come from requests
        self._env_kwargs = kwargs
        self._make_env = make_text_vector_env
        self.env_id = cfg.env.id
        self.task = get_task(cfg.env.id)
        self.run_dir = Path(run_dir)
        self.algo = cfg.agent.algo
        hf_logging.disable_progress_bar()
        lm, _ = load_causal_lm(str(run.final_dir), device="cpu")
        lm.eval()
        self._envs: dict[int, Any] = {}
        self.scorer = self.env(1)
        self.max_new_tokens = int(self.scorer.max_new_tokens)
        positions = int(getattr(lm.config, "max_position_embeddings", 0) or 0)
        self.max_prompt_tokens = positions - self.max_new_tokens if positions else 1 << 30
        self.fp32_bytes = state_dict_bytes(lm)
        self.quantize = quantize
        self.lm = quantize_int8(lm) if quantize == "int8" else lm
        self.model_bytes = state_dict_bytes(self.lm)
        self._gen = torch.Generator().manual_seed(int(seed))
        self._score_lock = threading.Lock()

    def env(self, n: int) -> Any:
        """The run's text vector env with ``n`` rows (cached: each holds a tokenizer)."""
        if n not in self._envs:
            self._envs[n] = self._make_env(self.env_id, n, **self._env_kwargs)
        return self._envs[n]

    def describe(self) -> dict[str, Any]:
        """What /healthz reports about this policy."""
        return {"kind": self.kind, "run": str(self.run_dir), "env_id": self.env_id,
                "algo": self.algo, "max_prompt_tokens": self.max_prompt_tokens,
                "max_new_tokens": self.max_new_tokens, "quantize": self.quantize,
                "model_bytes": self.model_bytes}

    def validate(self, prompt: Any, answer: Any, temperature: Any, where: str = "prompt") -> TextRow:
        """Check one prompt (non-empty text within the model's context) and its options."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{where} must be a non-empty string")
        n = len(self.scorer.tokenizer(prompt, verbose=False)["input_ids"])
        if n > self.max_prompt_tokens:
            raise InputError(f"{where} is {n} tokens; this model allows at most {self.max_prompt_tokens} "
                             f"prompt tokens ({self.max_prompt_tokens + self.max_new_tokens} positions "
                             f"minus {self.max_new_tokens} new tokens)")
        if answer is not None and not isinstance(answer, str):
            raise InputError(f"answer must be a string or null, got {type(answer).__name__}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise InputError("temperature must be a number >= 0 (0 = greedy)")
        if not math.isfinite(float(temperature)) or temperature < 0:
            raise InputError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature}")
        return TextRow(prompt, answer, float(temperature))

    def run_batch(self, rows: list[TextRow]) -> list[dict[str, Any]]:
        """Generate completions for a batch of prompts (one rollout per distinct temperature)."""
        from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine

        out: list[dict[str, Any] | None] = [None] * len(rows)
        by_temp: dict[float, list[int]] = {}
        for i, r in enumerate(rows):
            by_temp.setdefault(r.temperature, []).append(i)
        for temp, idx in by_temp.items():
            env = self.env(len(idx))
            with torch.inference_mode():
                engine = RolloutEngine.for_env(self.lm, env)
                ro = engine.rollout(env, DecodeSettings(temperature=temp), generator=self._gen,
                                    options={"prompts": [rows[i].prompt for i in idx],
                                             "answers": [rows[i].answer for i in idx]})
            for j, i in enumerate(idx):
                out[i] = {"completion": ro.completions[j], "eos": bool(ro.eos[j]),
                          "completion_ids": ro.completion_ids[j]}
        return [o for o in out if o is not None]

    def score(self, rows: Sequence[TextRow], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Score one request's completions through the env's reward registry, in one call
        (batch terms such as distinct-n see only this request's completions)."""
        with self._score_lock:
            totals, terms, _ = self.scorer.score([r.prompt for r in rows], [r.answer for r in rows],
                                                 [res["completion_ids"] for res in results])
        return {"reward_total": [float(t) for t in totals],
                "terms": {k: [None if not math.isfinite(float(x)) else float(x) for x in v]
                          for k, v in terms.items()}}


def load_policy(run_dir: str | Path, *, quantize: str = "none", seed: int = 0) -> RobotPolicy | TextPolicy:
    """The final policy of a finished run directory, as a robot or a text policy."""
    if quantize not in QUANTIZE_CHOICES:
        raise RlseekError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)}, got {quantize!r}")
    run = Run.open(run_dir)
    kind = agent_class(run.config.agent.algo).env_kind
    if kind == "text":
        return TextPolicy(run_dir, quantize=quantize, seed=seed)
    if kind == "robot":
        return RobotPolicy(run_dir, quantize=quantize)
    raise RlseekError(f"{run_dir} holds a '{run.config.agent.algo}' run ({kind}); rlseek serve "
                      "serves SB3 robot policies and lm-ppo/lm-grpo/lm-rloo language models")
