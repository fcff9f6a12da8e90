"""``LmPolicyConfig`` (what every text-policy agent shares) and ``LmPpoConfig`` (lm-ppo's).

:class:`LmPolicyConfig` holds the fields of the model, LoRA, rollouts, KL and entropy control,
the optimizer and logging, which lm-ppo and the critic-free agents (lm-grpo, lm-rloo) share;
:class:`LmPpoConfig` adds the value head, GAE and score shaping of PPO.

A config's ``agent.params`` mapping is turned into an :class:`LmPpoConfig` by
:func:`LmPpoConfig.from_params` (the :class:`~rlseek.agents.base.AgentConfig` contract), once per agent; an unknown key fails with a did-you-mean, a bad value names
its field path (``agent.params.<name>``) and what would be right.

Units: KL values are in nats, summed over the tokens of one completion ("sequence KL");
entropies are in nats per token; ``learning_rate`` is per optimizer step.

Two different KL knobs exist and mean different things:

* ``kl_target`` steers the *penalty* coefficient β of the adaptive controller (Ziegler et al.
  2019): the KL to the reference is pushed toward it, never cut off;
* ``early_stop_kl`` is stable-baselines3's ``target_kl``: an *early stop* of the PPO epochs of
  one iteration once the policy moved more than 1.5 × that (approx_kl, old → new policy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlseek.agents.base import AgentConfig
from rlseek.errors import ConfigError
from rlseek.models.loader import DEFAULT_MODEL


@dataclass
class LmPolicyConfig(AgentConfig):
    """What every text-policy agent (lm-ppo, lm-grpo, lm-rloo) configures alike: the model,
    LoRA, rollouts, KL and entropy control, the optimizer, evaluation and logging."""

    # -- model ------------------------------------------------------------------------------
    model: str = DEFAULT_MODEL
    """Policy checkpoint: ``rlseek/tiny-lm`` (the bundled model) or a local folder that
    ``AutoModelForCausalLM.from_pretrained`` reads."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of all weights; the reference is then the base
    model with the adapter disabled, so no second copy of the weights is kept."""
    lora_r: int = 8
    """LoRA rank."""
    lora_alpha: float = 16.0
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout inside the LoRA branch: must be 0. lm-ppo runs with dropout off everywhere
    (PPO's ratio compares two forward passes of the same weights; dropout would make them
    differ), so a non-zero value is refused rather than silently ignored."""
    lora_target_modules: list[str] | None = None
    """Module names to adapt; None uses peft's default for the architecture, else all linear."""

    # -- rollouts -----------------------------------------------------------------------------
    temperature: float = 1.0
    """Sampling temperature; the logits are divided by it before every log-prob, for the
    policy and the reference alike, so the KL compares the distributions actually sampled."""
    top_k: int = 0
    """Sample from the k most likely tokens only (0: the full distribution). Note that PPO's
    log-probs are of the full tempered distribution; keep 0 unless you know why."""

    # -- KL control ---------------------------------------------------------------------------
    kl_coef: float = 0.2
    """β: initial (adaptive) or fixed coefficient of the per-token KL penalty in the reward."""
    kl_control: str = "adaptive"
    """"adaptive" (β steered toward ``kl_target``) or "fixed"."""
    kl_target: float = 1.0
    """Sequence KL to the reference (nats) that the adaptive controller steers toward."""
    kl_horizon: int = 10_000
    """Adaptive controller horizon, in completions: β moves by at most ±20 % × n / horizon
    per iteration of n completions."""
    kl_penalty: str = "reward"
    """Where the KL penalty enters: "reward" (−β·KL per token in the reward, Ziegler et al.;
    the default) or "loss" (β·mean per-token KL estimate added to the loss and
    differentiated, GRPO's form; the reward is then the score alone)."""
    kl_estimator: str = "k1"
    """Per-token KL estimator, r = p_ref / p of the sampled token: "k1" = log p − log p_ref,
    "k2" = ½ (log r)², "k3" = (r − 1) − log r. k1 and k3 are unbiased estimates of the KL's
    value, k2 is biased. What matters for a penalty is the gradient: in the reward only k1
    gives ∇KL (k3 as a detached reward barely regularizes near the reference, so it is
    refused there); as a loss k2 gives ∇KL(π ‖ π_ref) and k3 ∇KL(π_ref ‖ π) (GRPO), k1 a
    zero gradient (refused). See :func:`rlseek.agents.lm_ppo.core.kl_estimate`."""

    # -- entropy control ----------------------------------------------------------------------
    ent_coef: float = 0.01
    """α: (initial) coefficient of the entropy bonus in the loss."""
    ent_control: str = "fixed"
    """"fixed" or "adaptive" (α steered so the policy's per-token entropy tracks
    ``ent_target``)."""
    ent_target: float = 1.0
    """Target per-token entropy (nats) for ``ent_control: adaptive``."""
    ent_rate: float = 0.1
    """Adaptive α step: log α moves by rate × clip((target − H) / target, ±1) per iteration."""
    ent_coef_max: float = 1.0
    """Upper bound of α in adaptive mode (it never goes below 1e-6)."""

    # -- optimization -------------------------------------------------------------------------
    learning_rate: float = 1e-5
    """Adam learning rate (lm-ppo: the value head included)."""
    lr_schedule: str = "constant"
    """"constant", or "linear": decays from ``learning_rate`` to 0 over the run's iterations
    (as lm-human-preferences does); the rate of iteration k of K is lr·(1 − k/K)."""
    ppo_epochs: int = 4
    """Passes over one iteration's rollouts (GRPO's μ, TRL's ``num_iterations``)."""
    num_minibatches: int = 4
    """Minibatches per epoch (the completions of an iteration are split into these)."""
    clip_range: float = 0.2
    """PPO ratio clip ε."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    grad_accum_steps: int = 1
    """Micro-batches per minibatch: each minibatch's gradient is accumulated over this many
    forward/backward passes (loss scaled by each micro-batch's share of the minibatch's
    tokens) before one optimizer step, so the result equals the unaccumulated step while
    peak memory falls. Must not exceed the minibatch size."""
    early_stop_kl: float | None = None
    """SB3's ``target_kl``: stop the epochs of an iteration once approx_kl > 1.5 × this."""
    micro_batch_tokens: int | None = None
    """Token budget of one micro-batch (rows × padded sequence length, prompt + response):
    when set, each minibatch's rows are sorted by length and packed greedily into
    micro-batches of at most this many tokens (at least one row each), each trimmed to its
    own longest prompt and response, and the same budget chunks the no-grad old/reference
    pass; it replaces ``grad_accum_steps``. The gradient equals the unsplit minibatch's (each
    micro-batch's loss is weighted by its share of the tokens). null: ``grad_accum_steps``
    equal-count splits. Throughput on a GPU wants large micro-batches (64 × 192 tokens on an
    H200), memory small ones."""

    # -- speed ----------------------------------------------------------------------------------
    compile: Any = "auto"  # true, false or "auto" (checked in validate)
    """``torch.compile`` the policy's teacher-forced forward (training and the no-grad pass):
    true / false, or "auto" (on CUDA only; compilation costs tens of seconds per new shape,
    which a CPU run would not earn back). A forward that fails to compile runs eagerly."""
    decode_cache: str = "auto"
    """Rollout decode loop (``DecodeSettings.cache``): "dynamic" (eager, growing KV cache),
    "static" (pre-allocated cache; on CUDA one CUDA graph per shape bucket) or "auto"
    (static on CUDA, dynamic elsewhere). Both give the same tokens."""
    decode_head_float32: bool = False
    """Static decode on CUDA under bf16 autocast (``DecodeSettings.head_float32``): false runs
    the rollout's LM head in bf16 with float32 output (README "GPU speed": +10 % to +25 %
    whole-decode tokens/s on an H100); true keeps it float32, the teacher-forced pass's
    precision, so the sampling distribution is the trained one up to the trunk's bf16. PPO's and GRPO's ratios use the
    teacher-forced log-probs either way. Ignored on the CPU and in float32 runs."""

    # -- evaluation / misc --------------------------------------------------------------------
    eval_temperature: float = 0.0
    """0: greedy evaluation; > 0: sampled at that temperature."""
    eval_samples: int = 1
    """Samples per held-out prompt when ``eval_temperature`` > 0."""
    eval_prompts_file: str | None = None
    """A JSONL prompts file (``{"prompt", "answer"}`` per line) to evaluate on, its first
    ``run.eval_episodes`` records. Unset: the held-out split of ``env.kwargs.prompts_file``
    when that is set (prompts the env never trains on), else the task's built-in held-out
    prompts."""
    dtype: str = "float32"
    """Compute dtype of the transformer trunk: "float32" or "bfloat16" (autocast; weights and
    Adam stay float32). The LM head, log-softmax and value head always run in float32.
    float16 is not offered: it would need loss scaling, which lm-ppo does not do."""
    tf32: bool = True
    """On CUDA, let float32 matmuls and convolutions use TF32 tensor cores (10-bit mantissa
    inputs, float32 accumulation; torch's ``fp32_precision = "tf32"``). No effect on CPU."""
    log_every: int = 1
    """Write TensorBoard scalars every this many iterations."""

    def to_dict(self) -> dict[str, Any]:
        """The params as plain data (the same as :meth:`to_params`)."""
        return self.to_params()

    def _bad(self, where: str, name: str, want: str) -> ConfigError:
        return ConfigError(f"field '{where}.{name}' must be {want}, got {getattr(self, name)!r}")

    def validate(self, where: str = "agent.params") -> None:
        """Raise :class:`ConfigError` naming the first shared field with a value out of range."""
        algo = getattr(getattr(type(self), "agent_class", None), "algo", "") or "lm-ppo"
        choices = {
            "kl_control": ("adaptive", "fixed"),
            "kl_penalty": ("reward", "loss"),
            "kl_estimator": ("k1", "k2", "k3"),
            "lr_schedule": ("constant", "linear"),
            "ent_control": ("fixed", "adaptive"),
            "dtype": ("float32", "bfloat16"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise self._bad(where, name, " or ".join(repr(a) for a in allowed))
        positive = ("temperature", "kl_target", "kl_horizon", "ent_target", "learning_rate",
                    "ppo_epochs", "num_minibatches", "clip_range", "max_grad_norm", "eval_samples",
                    "lora_r", "grad_accum_steps", "lora_alpha", "log_every", "ent_coef_max")
        for name in positive:
            if not getattr(self, name) > 0:
                raise self._bad(where, name, "> 0")
        for name in ("kl_coef", "ent_coef", "ent_rate", "eval_temperature", "top_k", "lora_dropout"):
            if getattr(self, name) < 0:
                raise self._bad(where, name, ">= 0")
        if self.lora_dropout != 0:
            raise self._bad(where, "lora_dropout", f"0 ({algo} keeps dropout off: PPO's ratio "
                                                   "compares two forward passes, which dropout "
                                                   "would make differ)")
        if self.kl_penalty == "reward" and self.kl_estimator != "k1":
            raise ConfigError(
                f"field '{where}.kl_estimator' is {self.kl_estimator!r} with kl_penalty 'reward': "
                "as a detached per-token reward only 'k1' gives the KL's gradient; use k1, or "
                "kl_penalty: loss for k2/k3")
        if self.kl_penalty == "loss" and self.kl_estimator == "k1":
            raise ConfigError(
                f"field '{where}.kl_estimator' is 'k1' with kl_penalty 'loss': differentiated, "
                "k1's gradient is zero in expectation; use 'k2' or 'k3' (GRPO), or kl_penalty: reward")
        if self.early_stop_kl is not None and self.early_stop_kl <= 0:
            raise self._bad(where, "early_stop_kl", "> 0 or null")
        mbt = self.micro_batch_tokens
        if mbt is not None and (isinstance(mbt, bool) or not isinstance(mbt, int) or mbt <= 0):
            raise self._bad(where, "micro_batch_tokens", "a positive integer (tokens) or null")
        if self.compile not in (True, False, "auto"):
            raise self._bad(where, "compile", "true, false or 'auto'")
        if self.decode_cache not in ("dynamic", "static", "auto"):
            raise self._bad(where, "decode_cache", "'dynamic', 'static' or 'auto'")


@dataclass
class LmPpoConfig(LmPolicyConfig):
    """Hyperparameters of PPO for RLHF on a causal language model: the shared fields of
    :class:`LmPolicyConfig` plus the value head, GAE and score shaping."""

    # -- PPO: value head and GAE ---------------------------------------------------------------
    gamma: float = 0.99
    """Per-token discount. 1.0 is common for LMs (the score arrives at the end); 0.99 is the
    default that rlseek's source document asks for. With γ < 1 the KL penalty PPO optimises
    is discounted (a token t steps before the end counts γ^t) while the adaptive controller
    measures, and steers, the undiscounted sequence KL: the two differ most for long
    completions (γ^48 ≈ 0.62)."""
    lam: float = 0.95
    """GAE λ."""
    clip_range_value: float = 0.2
    """Value clip: a new value may move at most this far from the rollout's value."""
    vf_coef: float = 0.1
    """Weight of the value loss (the value head shares the policy's trunk; see model.py)."""
    whiten_advantages: bool = True
    """Standardize advantages over the response tokens of the batch (masked whitening)."""


    # -- reward shaping -----------------------------------------------------------------------
    reward_norm: bool = True
    """Standardize the env's score with its running mean / std before clipping."""
    reward_clip: float = 5.0
    """Clip the (normalized) score to [−reward_clip, reward_clip]."""
    missing_eos_penalty: float = 1.0
    """Subtracted from the score of a completion that ended without EOS (after
    normalization, so the unit is standard deviations of the score)."""

    def validate(self, where: str = "agent.params") -> None:
        """Raise :class:`ConfigError` naming the first field with a value out of range."""
        super().validate(where)
        for name in ("clip_range_value", "reward_clip"):
            if not getattr(self, name) > 0:
                raise self._bad(where, name, "> 0")
        for name in ("vf_coef", "missing_eos_penalty"):
            if getattr(self, name) < 0:
                raise self._bad(where, name, ">= 0")
        if not 0.0 <= self.gamma <= 1.0:
            raise self._bad(where, "gamma", "in [0, 1]")
        if not 0.0 <= self.lam <= 1.0:
            raise self._bad(where, "lam", "in [0, 1]")
