"""BradleyTerryTrainer: fit a reward model to preference pairs.

Loss per pair (Bradley & Terry, 1952; as TRL's ``RewardTrainer``)::

    L = −log σ(r(prompt + chosen) − r(prompt + rejected) − margin)  [+ c · (r_c + r_r)²]

The optional second term (``center_rewards``, coefficient ``c``; Eisenstein et al., 2023) pulls
the rewards towards zero mean, so that scores from different models sit on comparable scales.
Each batch scores chosen and rejected texts in one forward pass (2·B sequences, right padded).

Metrics (on any preference set): ``accuracy`` = share of pairs with r_c > r_r (ties count as
wrong), ``mean_margin`` = mean of r_c − r_r, ``reward_mean``/``reward_std`` over all 2·n texts,
``loss`` = mean BT loss (margins included). Training stops early when eval accuracy has not
improved for ``patience`` evaluations; the best evaluated weights are restored.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from rlseek.errors import RlseekError
from rlseek.reward_models.adversarial import AdversarialConfig, bt_loss, perturb, perturbed_scores
from rlseek.reward_models.data import PreferenceDataset
from rlseek.rewards.learned.model import RewardModel


@dataclass
class TrainConfig:
    """Hyperparameters of Bradley–Terry training (sizes in pairs, rates per optimizer step)."""

    epochs: int = 3
    """Passes over the training pairs (an upper bound when early stopping is on)."""
    batch_size: int = 16
    """Pairs per optimizer step (2 × batch_size sequences per forward pass)."""
    learning_rate: float = 1e-4
    """AdamW learning rate, decayed linearly to 0 over the planned steps."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    center_rewards: float = 0.0
    """Coefficient c of the reward-centering term c·(r_c + r_r)²; 0 turns it off (TRL suggests 0.01)."""
    eval_every: int = 0
    """Evaluate every this many optimizer steps; 0 = once per epoch."""
    patience: int = 2
    """Stop after this many evaluations without a better eval accuracy; 0 = never stop early."""
    lora: bool = False
    """Train LoRA adapters (all linear layers) and the head instead of the whole backbone."""
    lora_rank: int = 8
    lora_alpha: int = 16
    adversarial: AdversarialConfig | None = None
    """Also train on PGD-perturbed embeddings (see rlseek.reward_models.adversarial)."""
    seed: int = 0
    eval_batch_size: int = 64
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise :class:`RlseekError` naming the first bad field."""
        checks = {
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0 and math.isfinite(self.learning_rate),
            "center_rewards": self.center_rewards >= 0,
            "eval_every": self.eval_every >= 0,
            "patience": self.patience >= 0,
            "lora_rank": self.lora_rank >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise RlseekError(f"invalid training setting {bad[0]}={getattr(self, bad[0])!r}")


def _margins(data: PreferenceDataset, idx: np.ndarray, device: torch.device) -> torch.Tensor | None:
    if not data.has_margins:
        return None
    return torch.tensor([data[i].margin or 0.0 for i in idx], dtype=torch.float32, device=device)


class _Tokenized:
    """Token ids of every chosen and rejected text, computed once."""

    def __init__(self, model: RewardModel, data: PreferenceDataset) -> None:
        self.data = data
        self.chosen = model.tokenize([p.chosen_text for p in data])
        self.rejected = model.tokenize([p.rejected_text for p in data])

    def batch(self, model: RewardModel, idx: np.ndarray) -> dict[str, torch.Tensor]:
        return model.collate([self.chosen[i] for i in idx] + [self.rejected[i] for i in idx])


def evaluate(
    model: RewardModel,
    data: PreferenceDataset,
    batch_size: int = 64,
    adversarial: AdversarialConfig | None = None,
    _tokens: _Tokenized | None = None,
) -> dict[str, float]:
    """Accuracy, mean margin, reward mean/std and loss of ``model`` on ``data``.

    With ``adversarial``, also ``adversarial_accuracy``: the accuracy when every pair is
    attacked by PGD on its token embeddings (the attacker climbs the BT loss).
    """
    tokens = _tokens or _Tokenized(model, data)
    was_training = model.training
    model.eval()
    rc_all, rr_all, adv_ok, losses = [], [], [], []
    n = len(data)
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        b = len(idx)
        enc = tokens.batch(model, idx)
        margin = _margins(data, idx, model.device)
        with torch.no_grad():
            r = model(**enc)
        rc_all.append(r[:b].cpu().numpy())
        rr_all.append(r[b:].cpu().numpy())
        losses.append(float(bt_loss(r[:b], r[b:], margin)) * b)
        if adversarial is not None:
            delta = perturb(model, enc["input_ids"], enc["attention_mask"],
                            lambda s, b=b, m=margin: bt_loss(s[:b], s[b:], m), adversarial)
            with torch.no_grad():
                ra = perturbed_scores(model, enc["input_ids"], enc["attention_mask"], delta)
            adv_ok.append((ra[:b] > ra[b:]).cpu().numpy())
    model.train(was_training)
    rc = np.concatenate(rc_all).astype(np.float64)
    rr = np.concatenate(rr_all).astype(np.float64)
    both = np.concatenate([rc, rr])
    out = {
        "n": n,
        "accuracy": float(np.mean(rc > rr)),
        "mean_margin": float(np.mean(rc - rr)),
        "reward_mean": float(both.mean()),
        "reward_std": float(both.std()),
        "loss": float(sum(losses) / n),
    }
    if adversarial is not None:
        out["adversarial_accuracy"] = float(np.mean(np.concatenate(adv_ok)))
        out["adversarial_epsilon"] = float(adversarial.epsilon)
        out["adversarial_steps"] = int(adversarial.steps)
    return out


class BradleyTerryTrainer:
    """Train a :class:`RewardModel` on preference pairs with the Bradley–Terry loss.

    Args:
        model: the reward model (LoRA is added here when ``config.lora``).
        config: hyperparameters.
        log: called with one line of progress text per evaluation (e.g. ``print``).
    """

    def __init__(
        self, model: RewardModel, config: TrainConfig, log: Callable[[str], None] | None = None
    ) -> None:
        config.validate()
        self.model = model
        self.config = config
        self.log = log or (lambda _msg: None)
        self.parameter_share: dict[str, float] | None = None
        if config.lora:
            self.parameter_share = model.add_lora(config.lora_rank, config.lora_alpha)
        self.history: list[dict[str, Any]] = []

    def _step_loss(self, enc: dict[str, torch.Tensor], b: int, margin: torch.Tensor | None) -> torch.Tensor:
        cfg = self.config
        r = self.model(**enc)
        loss = bt_loss(r[:b], r[b:], margin)
        if cfg.center_rewards > 0:
            loss = loss + cfg.center_rewards * ((r[:b] + r[b:]) ** 2).mean()
        if cfg.adversarial is not None:
            delta = perturb(self.model, enc["input_ids"], enc["attention_mask"],
                            lambda s: bt_loss(s[:b], s[b:], margin), cfg.adversarial)
            ra = perturbed_scores(self.model, enc["input_ids"], enc["attention_mask"], delta)
            loss = loss + cfg.adversarial.weight * bt_loss(ra[:b], ra[b:], margin)
        return loss

    def _shard_backward(self, tokens: _Tokenized, data: PreferenceDataset, idx: np.ndarray) -> torch.Tensor:
        """Backward of one batch's mean loss; returns the loss (detached).

        Under torchrun each rank takes its block of the batch's pairs and weights its mean loss
        by its share of the pairs, and the gradients are summed over ranks
        (:func:`rlseek.distributed.grads.all_reduce_gradients`): the sum is the gradient of
        the whole batch's mean, as in one process. Alone, the batch is the rank's block.
        """
        from rlseek.distributed import all_reduce_sum, current
        from rlseek.distributed.grads import all_reduce_gradients

        world = current()
        part = np.array_split(idx, world.world_size)[world.rank] if world.world_size > 1 else idx
        loss = torch.zeros((), device=self.model.device)
        if len(part):
            enc = tokens.batch(self.model, part)
            loss = self._step_loss(enc, len(part), _margins(data, part, self.model.device))
            if len(part) != len(idx):
                loss = loss * (len(part) / len(idx))
            loss.backward()
        if world.world_size > 1:
            all_reduce_gradients(p for p in self.model.parameters() if p.requires_grad)
            return all_reduce_sum(loss.detach().float().cpu())
        return loss.detach()

    def train(self, train: PreferenceDataset, eval_data: PreferenceDataset | None = None) -> dict[str, Any]:
        """Fit on ``train`` (early stopping on ``eval_data``); returns the run's figures.

        The returned dict has ``train`` and ``eval`` metrics of the final (best) weights,
        ``history``, ``pairs_per_second`` (training steps only), ``steps``, ``stopped_early``,
        ``trainable_parameters`` and the ``score_mean``/``score_std`` of the training texts,
        which are also stored in ``model.info`` for normalization downstream.
        """
        cfg, model = self.config, self.model
        if len(train) == 0:
            raise RlseekError("no training pairs")
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        model.train()
        tok_train = _Tokenized(model, train)
        tok_eval = _Tokenized(model, eval_data) if eval_data is not None and len(eval_data) else None
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        total_steps = steps_per_epoch * cfg.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total_steps))
        eval_every = cfg.eval_every or steps_per_epoch
        best_acc, best_state, since_best = -1.0, None, 0
        step, train_time, pairs_seen, stopped_early = 0, 0.0, 0, False
        running = []
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(train))
            for start in range(0, len(train), cfg.batch_size):
                t0 = time.perf_counter()
                idx = order[start : start + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = self._shard_backward(tok_train, train, idx)
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                sched.step()
                train_time += time.perf_counter() - t0
                pairs_seen += len(idx)
                running.append(loss.item())
                step += 1
                if not math.isfinite(running[-1]):
                    raise RlseekError(f"training diverged (loss {running[-1]}) at step {step}; lower --lr")
                if step % eval_every and step != total_steps:
                    continue
                rec: dict[str, Any] = {"step": step, "epoch": epoch + 1,
                                       "train_loss": float(np.mean(running))}
                running = []
                if tok_eval is not None:
                    assert eval_data is not None
                    ev = evaluate(model, eval_data, cfg.eval_batch_size, _tokens=tok_eval)
                    rec.update({f"eval_{k}": v for k, v in ev.items() if k != "n"})
                    if ev["accuracy"] > best_acc:
                        best_acc, since_best = ev["accuracy"], 0
                        best_state = copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
                    else:
                        since_best += 1
                self.history.append(rec)
                self.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()))
                if cfg.patience and since_best >= cfg.patience:
                    stopped_early = True
                    break
            if stopped_early:
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        # One pass over the training texts gives both the normalization statistics and the
        # training metrics.
        n = len(train)
        scores = model.score([p.chosen_text for p in train] + [p.rejected_text for p in train],
                             batch_size=cfg.eval_batch_size)
        model.info["score_mean"] = float(scores.mean())
        model.info["score_std"] = float(scores.std()) or 1.0
        margins = np.array([p.margin or 0.0 for p in train])
        diff = scores[:n] - scores[n:]
        train_metrics = {
            "n": n, "accuracy": float(np.mean(diff > 0)), "mean_margin": float(diff.mean()),
            "reward_mean": float(scores.mean()), "reward_std": float(scores.std()),
            "loss": float(np.mean(np.logaddexp(0.0, -(diff - margins)))),
        }
        result: dict[str, Any] = {
            "train": train_metrics,
            "eval": evaluate(model, eval_data, cfg.eval_batch_size, _tokens=tok_eval) if tok_eval else None,
            "history": self.history,
            "steps": step,
            "stopped_early": stopped_early,
            "pairs_per_second": pairs_seen / train_time if train_time > 0 else None,
            "train_seconds": train_time,
            "score_mean": model.info["score_mean"],
            "score_std": model.info["score_std"],
            "trainable_parameters": self.parameter_share
            or {"trainable": sum(p.numel() for p in params), "total": sum(p.numel() for p in model.parameters()),
                "share": sum(p.numel() for p in params) / sum(p.numel() for p in model.parameters())},
            "config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
        }
        return result
