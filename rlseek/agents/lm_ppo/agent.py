"""The ``lm-ppo`` agent: PPO for online RLHF of a causal LM on rlseek's text environments.

:class:`LmAgent` is the part every text-policy agent shares (lm-ppo, and the critic-free
lm-grpo and lm-rloo): the env, the model, the train loop, checkpoints and resume, logging,
evaluation and the summary. An agent on top of it names its trainer
(:meth:`LmAgent._make_trainer`), how its policy is built (:meth:`LmAgent._build_policy`) and
the vector env's reset options of an iteration (:meth:`LmAgent._rollout_options`).

Budget and resources (``run`` section):

* ``total_steps`` counts **completions** (episodes) used for training. One PPO iteration
  rolls out ``n_envs`` prompts (one episode of the vector env), so a run makes
  ``ceil(total_steps / n_envs)`` iterations. ``eval_every`` and ``checkpoint_every`` are in
  completions too.
* ``eval_episodes`` is the number of held-out prompts scored before training (the base
  model) and after it (the final policy), and by ``rlseek eval``.
* ``torch_threads``: CPU threads for torch (0: torch's default); 1 on a shared machine.
* ``n_envs`` rows of the text vector env = completions per iteration; ``vec_env`` is unused
  (the text vector env steps all rows in lockstep in-process).

Files: checkpoints hold ``policy/`` (``save_pretrained``: the full model, or the LoRA adapter
only), ``value_head.safetensors``, ``optimizer.pt`` and ``rng.pt`` (tensors only, read back
with ``torch.load(weights_only=True)``) and the JSON state (iteration, β, α, score
statistics, the base evaluation). ``final/`` is the trained policy — merged with its adapter
when LoRA was used — with its tokenizer, so ``AutoModelForCausalLM.from_pretrained(RUN/final)``
loads it, plus ``value_head.safetensors``.

Evaluation (before and after training, and ``rlseek eval RUN``) scores ``run.eval_episodes``
prompts that training never sees: the first records of ``agent.params.eval_prompts_file``,
else the held-out split of ``env.kwargs.prompts_file`` (the hash split of the built-in tasks;
the env trains on the rest), else the task's seeded built-in held-out prompts; ``summary.json``
names the set (``eval_prompts``). Greedy by default (``agent.params.eval_temperature`` > 0
samples ``eval_samples`` completions per prompt).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from rlseek.agents.base import Agent, register_agent
from rlseek.agents.lm_ppo import files
from rlseek.agents.lm_ppo.config import LmPolicyConfig, LmPpoConfig
from rlseek.agents.lm_ppo.model import build_policy
from rlseek.agents.lm_ppo.sharding import BatchShard
from rlseek.agents.lm_ppo.trainer import LmTrainer, PPOTrainer, autocast
from rlseek.agents.loop import TrainingLoop
from rlseek.config import ExperimentConfig
from rlseek.distributed import barrier, rank_seed
from rlseek.envs.text.evaluation import evaluate_prompts
from rlseek.envs.text.rollout import DecodeSettings, RolloutEngine
from rlseek.envs.text.tasks import get_task
from rlseek.errors import RlseekError
from rlseek.evaluation import EVAL_SEED_OFFSET
from rlseek.models.moe import expert_load
from rlseek.runs import Run
from rlseek.runtime import quiet_libraries, resolve_device, set_torch_threads
from rlseek.stages import TextStages, iteration_rows, parse_stages


def _quiet_transformers() -> None:
    """No per-file progress bars from transformers while loading and saving checkpoints
    (dozens per run); rlseek's own progress bar says where training is."""
    quiet_libraries("transformers")


def _set_threads(rc: Any, device: torch.device) -> None:
    """Apply ``run.torch_threads`` on CPU (0 keeps torch's default). On a machine shared with
    other busy processes, 1 thread is the safe choice: two threads contending for two cores
    made lm-ppo iterations 5-30x slower here."""
    set_torch_threads(device.type, rc.torch_threads, default=None)


def _device(name: str) -> torch.device:
    return torch.device(resolve_device(name, check=True))


class LmAgent(Agent):
    """A text-policy agent: the loop, runs, checkpoints and evaluation shared by lm-ppo,
    lm-grpo and lm-rloo. Subclasses set ``config_class`` and :meth:`_make_trainer`."""

    env_kind = "text"
    distributed_strategies = ("ddp", "fsdp")
    params: LmPolicyConfig
    supports_continual = True

    # -- the algorithm's hooks -----------------------------------------------------------------
    def _build_policy(self, lm: Any, cfg: Any) -> tuple[Any, Any]:
        """(policy, reference) of ``lm``; see :func:`build_policy`."""
        return build_policy(lm, cfg)

    def _make_trainer(self, policy: Any, reference: Any, cfg: Any, device: torch.device, *,
                      vocab_size: int, banned_ids: tuple[int, ...], total_iterations: int
                      ) -> LmTrainer:
        """The algorithm's :class:`LmTrainer`."""
        raise NotImplementedError

    def _rollout_options(self, iteration: int) -> dict[str, Any] | None:
        """The text vector env's reset options of 0-based ``iteration`` (None: the env's own
        prompt sampling, one prompt per row)."""
        return None

    # -- config ------------------------------------------------------------------------------
    def resolve_config(self, config: ExperimentConfig) -> ExperimentConfig:
        """Fill in every default of ``agent.params`` and the env's reward weights and term
        params (from the task's declared defaults), as SB3 agents do."""
        from rlseek.envs.factory import resolve_reward

        # Built once so that bad env.kwargs fail before a run directory exists.
        self._make_env(config, 1).close()
        return dataclasses.replace(
            config,
            agent=dataclasses.replace(config.agent, params=self.params.to_params()),
            env=resolve_reward(config.env),
        )

    @staticmethod
    def _make_env(config: ExperimentConfig, n: int) -> Any:
        """The text vector env of ``n`` rows; it tokenizes with the policy model's tokenizer
        (``agent.params.model``) unless ``env.kwargs.model`` names another."""
        from rlseek.envs.factory import check_env_id, env_make_kwargs
        from rlseek.envs.text import make_text_vector_env

        check_env_id(config.env.id)
        kwargs = env_make_kwargs(config.env)
        kwargs.setdefault("model", config.agent.params.get("model", LmPolicyConfig.model))
        try:
            return make_text_vector_env(config.env.id, n, **kwargs)
        except TypeError as exc:
            raise RlseekError(f"env '{config.env.id}': bad env.kwargs: {exc}") from None

    # -- model loading -----------------------------------------------------------------------
    @staticmethod
    def _load_lm(path: str, device: torch.device, env: Any) -> Any:
        from rlseek.models.loader import load_causal_lm

        lm, tok = load_causal_lm(path, device=str(device))
        if lm.get_input_embeddings().num_embeddings < len(env.tokenizer) or (
            tok.eos_token_id != env.eos_token_id or tok.pad_token_id != env.pad_token_id
        ):
            raise RlseekError(
                f"model '{path}' does not share the env's tokenizer (eos/pad/vocab differ); "
                "the env tokenizes with its own tokenizer, so use a model trained with it"
            )
        return lm

    # -- training ----------------------------------------------------------------------------
    def train(self, run: Run, *, resume: bool = False, progress: bool = False) -> dict[str, Any]:
        """The loop's hooks, in order: setup and resume, the base evaluation, then per
        iteration rollout -> PPO step -> ``loop.iteration`` (scalars, monitoring, progress)
        -> evaluation and checkpoint when due; at the end the final policy, its evaluation and
        ``loop.summary``."""
        rc = run.config.run
        cfg = self.params
        device = _device(rc.device)
        _set_threads(rc, device)
        _quiet_transformers()
        torch.manual_seed(rc.seed)  # the same initial weights (value head, LoRA) on every rank
        stages = parse_stages(rc.stages, int(rc.total_steps), "run.stages")
        rows = iteration_rows(stages, int(rc.total_steps), rc.n_envs)
        done_at = np.cumsum(rows).tolist()
        # Under torchrun each rank rolls out its rows of the global batch (see sharding.py);
        # staged batch sizes are one-process only (refused under torchrun).
        shard = BatchShard(rc.n_envs)
        shard.reseed = shard.world.distributed or rc.distributed is not None
        world = shard.world
        env = self._make_env(run.config, rows[0] // world.world_size)
        lm = self._load_lm(cfg.model, device, env)
        policy, reference = self._build_policy(lm, cfg)
        policy.to(device)
        # strategy fsdp: the policy sharded for the update, `view` its unsharded copy for
        # rollouts, evaluation and files (see rlseek.distributed.fsdp); otherwise the policy.
        sharded = _shard_policy(policy, run.config) if world.distributed else None
        view = sharded.plain if sharded is not None else policy
        iterations = len(rows)
        engine = RolloutEngine.for_env(view.lm, env, device)
        decode = DecodeSettings(temperature=cfg.temperature, top_k=cfg.top_k,
                                cache=cfg.decode_cache, compile=cfg.compile,
                                head_float32=cfg.decode_head_float32)
        if shard.split and decode.resolved(device)[0] == "static":
            shard.per_rank_noise = True  # the CUDA-graph loop draws for its own rows only
        elif shard.split:
            decode = dataclasses.replace(decode, noise_rows=(shard.first, rc.n_envs))
        trainer = self._make_trainer(policy, reference, cfg, device, vocab_size=engine.vocab_size,
                                     banned_ids=engine.banned_ids(decode), total_iterations=iterations)
        hooks = None
        if self.continual is not None:  # one task of a sequence: see rlseek.continual.text
            from rlseek.continual.text import TextContinual

            hooks = TextContinual(self.continual, lora=bool(cfg.lora))
            trainer.extra_loss = hooks.extra_loss(policy)
        trainer.shard, trainer.sharded = shard, sharded
        torch.manual_seed(rank_seed(rc.seed, world.rank))  # per-rank stream from here on
        sample_gen = torch.Generator(device=device).manual_seed(rc.seed)
        trainer.shuffle_gen.manual_seed(rc.seed + 1)
        counts = policy.parameter_counts()
        start, history, base_eval = 0, [], None
        if resume:
            ckpt = run.latest_checkpoint()
            if ckpt is None:
                raise RlseekError(f"{run.path} has no checkpoint to resume from")
            self._load_checkpoint(ckpt.path, view, trainer, sample_gen, device)
            trainer.load_state_dict(ckpt.state["trainer"])
            start, history, base_eval = ckpt.state["iteration"], ckpt.state["history"], ckpt.state["base_eval"]
        if base_eval is None and world.is_main:  # evaluations run on rank 0 only
            base_eval = self._eval(view.lm, run.config, cfg, device)
        total_done = int(done_at[-1])
        staging = TextStages(stages, env)
        loop = TrainingLoop(run, unit="completions", total=total_done,
                            start=int(done_at[start - 1]) if start else 0,
                            progress=progress, desc=self.algo, device=str(device))
        tokens = 0
        try:
            for it in range(start, iterations):
                staging.enter(it, rows[it])
                t0 = time.perf_counter()
                seed = rc.seed * 1_000_003 + it
                if shard.reseed:  # ranks stop decoding at different lengths: re-seed per iteration
                    sample_gen.manual_seed(shard.sample_seed(rc.seed, it))
                with autocast(device, cfg.dtype):
                    options = shard.rollout_options(env, seed, self._rollout_options(it))
                    if hooks is not None:
                        options = hooks.mix(options, env, it)
                    ro = engine.rollout(env, decode, generator=sample_gen, seed=seed, options=options)
                t1 = time.perf_counter()
                stage_stats = staging.observe(ro)
                stats = trainer.step(ro)
                stats.update(stage_stats)
                stats.update(expert_load(policy.lm))  # MoE LMs: moe/load_*, moe/balance_loss
                t2 = time.perf_counter()
                stats.update(self._rollout_stats(ro, t1 - t0, t2 - t1))
                stats = shard.mean_scalars(stats)  # per-term rewards etc. over the global batch
                n_tokens = int(shard.total(torch.tensor(float(ro.n_tokens))))
                tokens += n_tokens
                done = int(done_at[it])
                loop.iteration(done, stats, log=(it + 1) % cfg.log_every == 0 or it + 1 == iterations,
                               rollout_s=t1 - t0, train_s=t2 - t1, items=rows[it],
                               tokens=n_tokens, quality=shard.mean_scalars(self._quality(ro)),
                               postfix={"reward": stats["reward/total"], "kl": stats["charts/kl_ref"]})
                history.append({"iteration": it + 1, "completions": done, **{
                    k: stats[k] for k in ("reward/total", "charts/kl_ref", "charts/kl_coef",
                                          "charts/entropy", "charts/ent_coef", "charts/eos_rate")}})
                if loop.eval_due(done) and it + 1 < iterations and world.is_main:
                    loop.log_eval(self._eval(view.lm, run.config, cfg, device), done, _EVAL_KEYS)
                if loop.checkpoint_due(done) or it + 1 == iterations:
                    self._save_checkpoint(run, done, view, trainer, sample_gen, {
                        "iteration": it + 1, "completions": done, "history": history,
                        "base_eval": base_eval, "trainer": trainer.state_dict()})
        except BaseException:
            loop.close()  # an interrupted run keeps its curves up to the interruption
            raise
        finally:
            env.close()
        wall = loop.elapsed_s()
        final_eval: dict[str, Any] = {}
        continual = None
        if world.is_main:  # rank 0 writes final/ and evaluates; the others wait
            self._save_final(run, view, env.tokenizer)
            continual = hooks.finish(self, policy, trainer, device) if hooks is not None else None
            final_eval = self.evaluate(run)
        barrier()
        loop.log_eval(final_eval, total_done, _EVAL_KEYS)
        figures = self._summary(history, base_eval, final_eval, counts, cfg, iterations, rc.n_envs,
                                wall, tokens, resumed_from=start if resume else None)
        figures.pop("algo"), figures.pop("eval")
        figures["completions"] = total_done
        if stages:
            figures["stages"] = staging.records
        mixture = getattr(env.core, "mixture", None)
        if mixture is not None:  # realised vs requested shares and reward terms per source
            figures["prompt_sources"] = mixture.report()
        if continual is not None:
            figures["continual"] = continual
        summary = loop.summary(algo=self.algo, steps=total_done, eval=final_eval,
                               resumed_from=(int(done_at[start - 1]) if start else 0) if resume
                               else None, wall_time_s=wall,
                               **figures)
        loop.close()
        return summary

    @staticmethod
    def _quality(ro: Any) -> dict[str, float]:
        """Text quality of one rollout batch: distinct-2 over its completions' token ids,
        mean length in tokens, EOS rate."""
        from rlseek.rewards.text import distinct_n

        return {"distinct_2": distinct_n([list(c) for c in ro.completion_ids], 2),
                "response_length": float(ro.lengths.mean()), "eos_rate": float(np.mean(ro.eos))}

    @staticmethod
    def _rollout_stats(ro: Any, t_gen: float, t_train: float) -> dict[str, float]:
        lengths = ro.lengths
        stats = {"reward/total": float(np.mean(ro.scores)),
                 "charts/response_length": float(lengths.mean()),
                 "charts/eos_rate": float(np.mean(ro.eos)),
                 "charts/rollout_tokens_per_second": ro.n_tokens / max(t_gen, 1e-9),
                 "charts/train_tokens_per_second": ro.n_tokens / max(t_train, 1e-9),
                 "charts/time_rollout": t_gen, "charts/time_train": t_train,
                 "charts/time_env": ro.timings.get("env", 0.0)}
        for term, values in ro.terms.items():
            finite = values[np.isfinite(values)]
            stats[f"reward/{term}"] = float(finite.mean()) if finite.size else float("nan")
        if ro.success is not None:
            stats["charts/success_rate"] = float(np.mean(ro.success))
        return stats

    def _summary(self, history: list[dict[str, Any]], base: dict[str, Any], final: dict[str, Any],
                 counts: dict[str, Any], cfg: LmPolicyConfig, iterations: int, n_envs: int,
                 wall: float, tokens: int, resumed_from: int | None) -> dict[str, Any]:
        last = history[-1] if history else {}
        tail = history[-5:]

        def pick(ev: dict[str, Any], key: str) -> Any:
            return ev.get(key) if ev else None

        return {
            "algo": self.algo,
            "iterations": iterations,
            "completions": iterations * n_envs,
            "base_accuracy": pick(base, "exact_match"),
            "final_accuracy": pick(final, "exact_match"),
            "base_positive_fraction": pick(base, "positive_fraction"),
            "final_positive_fraction": pick(final, "positive_fraction"),
            "base_distinct_2": pick(base, "distinct_2"),
            "final_distinct_2": pick(final, "distinct_2"),
            "final_kl": last.get("charts/kl_ref"),
            "final_kl_last5_mean": float(np.mean([h["charts/kl_ref"] for h in tail])) if tail else None,
            "kl_target": cfg.kl_target if cfg.kl_control == "adaptive" else None,
            "final_kl_coef": last.get("charts/kl_coef"),
            "final_entropy": last.get("charts/entropy"),
            "final_ent_coef": last.get("charts/ent_coef"),
            "final_eos_rate": last.get("charts/eos_rate"),
            "lora": cfg.lora,
            **counts,
            "train_wall_seconds": wall,
            "train_tokens": tokens,
            "resumed_from_iteration": resumed_from,
            "eval_prompts": pick(final, "prompts"),
            "base_eval": base,
            "eval": final,
            "history": history,
        }

    # -- evaluation --------------------------------------------------------------------------
    def _eval(self, lm: Any, config: ExperimentConfig, cfg: LmPolicyConfig, device: torch.device,
              episodes: int | None = None) -> dict[str, Any]:
        """Score ``lm`` on ``episodes`` (default ``run.eval_episodes``) evaluation prompts:
        the first records of ``agent.params.eval_prompts_file``, else of the held-out split
        of ``env.kwargs.prompts_file``, else seeded built-in held-out prompts. The result's
        ``prompts`` says which set was used."""
        rc = config.run
        prompts, answers, source = self._eval_set(config, cfg, episodes or rc.eval_episodes)
        task = get_task(config.env.id)
        with autocast(device, cfg.dtype):
            result = evaluate_prompts(lm, lambda k: self._make_env(config, k), prompts, answers,
                                      task=task.name, batch_size=max(rc.n_envs, 64),
                                      temperature=cfg.eval_temperature, samples=cfg.eval_samples,
                                      seed=rc.seed + EVAL_SEED_OFFSET, device=device)
        result["prompts"] = source
        return result

    def _eval_set(self, config: ExperimentConfig, cfg: LmPolicyConfig, n: int
                  ) -> tuple[list[str], list[Any], str]:
        """(prompts, answers, description) of the evaluation set (see :meth:`_eval`)."""
        from rlseek.envs.text import heldout_prompts, load_prompts_file
        from rlseek.envs.text.tasks import split_records

        task = get_task(config.env.id)
        train_file = config.env.kwargs.get("prompts_file")
        if cfg.eval_prompts_file:
            records = load_prompts_file(cfg.eval_prompts_file, require_answer=task.requires_answer)
            source = f"eval_prompts_file {cfg.eval_prompts_file}"
        elif train_file:
            records = split_records(task.name, load_prompts_file(
                train_file, require_answer=task.requires_answer))[1]
            if not records:
                raise RlseekError(
                    f"env.kwargs.prompts_file '{train_file}' has no prompt in the held-out split "
                    "(about 10 % of distinct prompts), so nothing held out to evaluate on; set "
                    "agent.params.eval_prompts_file to a file of evaluation prompts")
            source = f"held-out split of prompts_file {train_file}"
        else:
            held = heldout_prompts(config.env.id, n=n, seed=config.run.seed + EVAL_SEED_OFFSET,
                                   level=config.env.kwargs.get("level"))
            return held["prompts"], held["answers"], "built-in held-out prompts"
        records = records[:n]
        return [p for p, _ in records], [a for _, a in records], f"{source} ({len(records)} prompts)"

    def evaluate(self, run: Run, *, episodes: int | None = None) -> dict[str, Any]:
        """Score the run's final policy (or its newest checkpoint) on its evaluation set
        (see :meth:`_eval`)."""
        cfg = self.params
        device = _device(self.config.run.device)
        _set_threads(self.config.run, device)
        _quiet_transformers()
        env = self._make_env(self.config, 1)
        env.close()
        if (run.final_dir / "config.json").is_file():
            lm = self._load_lm(str(run.final_dir), device, env)
            source = "final"
        else:
            ckpt = run.latest_checkpoint()
            if ckpt is None:
                raise RlseekError(f"{run.path} has neither final/ nor a checkpoint to evaluate")
            lm = self._load_lm(cfg.model, device, env)
            policy, _ = self._build_policy(lm, cfg)
            self._load_policy_weights(ckpt.path, policy, device)
            lm, source = policy.lm, ckpt.path.name
        result = self._eval(lm, self.config, cfg, device, episodes)
        result["policy"] = source
        return result

    # -- files (rlseek/agents/lm_ppo/files.py) ------------------------------------------------
    _save_checkpoint = staticmethod(files.save_checkpoint)
    _load_policy_weights = staticmethod(files.load_policy_weights)
    _load_checkpoint = staticmethod(files.load_checkpoint)
    _save_final = staticmethod(files.save_final)


_EVAL_KEYS = ("mean_return", "success_rate", "exact_match", "positive_fraction", "distinct_2")


@register_agent("lm-ppo")
class LmPpoAgent(LmAgent):
    """PPO-RLHF with a KL penalty to a frozen reference and an entropy bonus."""

    config_class = LmPpoConfig
    params: LmPpoConfig

    def _make_trainer(self, policy: Any, reference: Any, cfg: Any, device: torch.device, *,
                      vocab_size: int, banned_ids: tuple[int, ...], total_iterations: int
                      ) -> LmTrainer:
        return PPOTrainer(policy, reference, cfg, device, vocab_size=vocab_size,
                          banned_ids=banned_ids, total_iterations=total_iterations)


def _shard_policy(policy: Any, config: ExperimentConfig) -> Any:
    """The FSDP2-sharded policy under ``run.distributed.strategy: fsdp``, else None."""
    if (config.run.distributed or {}).get("strategy") != "fsdp":
        return None
    from rlseek.distributed.fsdp import ShardedPolicy

    return ShardedPolicy(policy)
