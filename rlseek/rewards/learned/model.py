"""RewardModel: a transformers backbone with a scalar head on the last real token.

A text is scored as ``head(h_T)``, where ``h_T`` is the backbone's last hidden state at the
last non-pad token. Sequences are right padded and the EOS token is appended (when the tokenizer
has one), so the score sits on EOS just as PPO-RLHF puts the reward on the EOS token. Texts
longer than ``max_length`` tokens keep their *end* (the completion is what is judged). Dropout
is switched off everywhere: Bradley–Terry compares two forward passes, and noise between them
would be noise in the loss.

A saved reward model is a directory::

    DIR/config.json, model.safetensors    the backbone (HF ``save_pretrained``, LoRA merged)
    DIR/tokenizer*                         its tokenizer
    DIR/score_head.safetensors             the scalar head (weight (1, H), bias (1,))
    DIR/reward_model.json                  the marker: format, backbone, max_length and the
                                           score mean/std on the training data
    DIR/metrics.json                       training and evaluation figures
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlseek.errors import RlseekError
from rlseek.models.loader import DEFAULT_MODEL

MARKER = "reward_model.json"
HEAD_FILE = "score_head.safetensors"
FORMAT = "rlseek-reward-model"
FORMAT_VERSION = 1
DEFAULT_BACKBONE = DEFAULT_MODEL


def resolve_backbone(name: str) -> str:
    """Where to load backbone ``name`` from: the bundled LM's folder, a local folder, a hub name.

    Uses :func:`rlseek.models.loader.resolve_model_path`, so a missing bundled model or an
    unreachable hub name fails with one clear line.
    """
    from rlseek.models.loader import resolve_model_path

    return resolve_model_path(name)


def _no_dropout_config(config: Any) -> Any:
    # Attention dropout in several architectures reads the config, not an nn.Dropout module.
    for key, value in list(vars(config).items()):
        if isinstance(value, float) and ("dropout" in key or "pdrop" in key):
            setattr(config, key, 0.0)
    config.use_cache = False
    return config


def _disable_dropout(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    # Loading a 2 M-parameter model should not draw a progress bar on the PPO run's stderr.
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def is_reward_model_dir(path: str | Path) -> bool:
    """True when ``path`` is a directory holding an rlseek reward model marker."""
    marker = Path(path) / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class RewardModel(nn.Module):
    """A scalar reward ``r(text)`` from a transformers backbone.

    Build a new one with :meth:`from_backbone`, load a trained one with :meth:`load`.

    Attributes:
        backbone: the transformers base model (``AutoModel``), possibly wrapped by peft.
        head: ``nn.Linear(hidden, 1)``.
        tokenizer: the backbone's tokenizer (right padding).
        max_length: the most tokens scored per text, EOS included.
        info: the marker's contents (backbone name, score mean/std, ...).
    """

    def __init__(self, backbone: nn.Module, tokenizer: Any, max_length: int, info: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = int(backbone.config.hidden_size)
        self.head = nn.Linear(hidden, 1)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"
        self.max_length = int(max_length)
        self.info = dict(info)
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            # Padding positions are masked out and never scored, so any id is safe here.
            self.pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.eos_id = tokenizer.eos_token_id
        _disable_dropout(self)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, name: str = DEFAULT_BACKBONE, max_length: int = 512, seed: int = 0) -> RewardModel:
        """A new reward model on backbone ``name`` (a local HF model folder or the bundled LM).

        The head starts at small random weights (std 1/√(H+1)), seeded by ``seed``.
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = resolve_backbone(name)
        try:
            with _no_progress_bars():
                config = _no_dropout_config(AutoConfig.from_pretrained(path))
                backbone = AutoModel.from_pretrained(path, config=config, dtype=torch.float32)
                tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RlseekError(f"cannot load backbone '{name}' as a transformers model: {first}") from None
        limit = getattr(backbone.config, "max_position_embeddings", None) or getattr(
            backbone.config, "n_positions", None
        )
        if limit:
            max_length = min(int(max_length), int(limit))
        emb = backbone.get_input_embeddings().weight.detach().float()
        # The unit of the adversarial radius used by adversarial reward-model training.
        info = {"backbone": name, "embedding_rms": float(emb.pow(2).mean().sqrt())}
        model = cls(backbone, tokenizer, max_length, info)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            hidden = model.head.in_features
            model.head.weight.copy_(torch.randn(1, hidden, generator=gen) / np.sqrt(hidden + 1))
            model.head.bias.zero_()
        return model

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> RewardModel:
        """Load a reward model saved by :meth:`save`; other folders fail with one clear line."""
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise RlseekError(f"reward model {path} does not exist (or is not a directory)")
        if not is_reward_model_dir(path):
            raise RlseekError(
                f"{path} is not an rlseek reward model (no valid {MARKER}); "
                "train one with `rlseek reward-model train`"
            )
        info = json.loads((path / MARKER).read_text())
        try:
            with _no_progress_bars():
                config = _no_dropout_config(AutoConfig.from_pretrained(path))
                backbone = AutoModel.from_pretrained(path, config=config, dtype=torch.float32)
                tokenizer = AutoTokenizer.from_pretrained(path)
                head = load_file(str(path / HEAD_FILE))
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RlseekError(f"reward model {path} is incomplete or damaged: {first}") from None
        model = cls(backbone, tokenizer, int(info.get("max_length", 512)), info)
        model.head.load_state_dict(head)
        return model.to(device).eval()

    def save(self, path: str | Path, metrics: dict[str, Any] | None = None) -> None:
        """Write the model into the (empty, new) folder ``path``; LoRA weights are merged first.

        Callers wrap this in :func:`rlseek.runs.atomic_directory` so a crash leaves nothing.
        """
        from safetensors.torch import save_file

        from rlseek.runs import atomic_write_json

        path = Path(path)
        self.merge_lora()
        with _no_progress_bars():
            self.backbone.save_pretrained(path)
            self.tokenizer.save_pretrained(path)
        head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(path / HEAD_FILE))
        if metrics is not None:
            atomic_write_json(path / "metrics.json", metrics)
        marker = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            **{k: v for k, v in self.info.items() if k not in ("format", "version")},
            "max_length": self.max_length,
            "append_eos": self.eos_id is not None,
        }
        atomic_write_json(path / MARKER, marker)

    # -- LoRA --------------------------------------------------------------------------------
    def add_lora(self, rank: int = 8, alpha: int = 16) -> dict[str, float]:
        """Freeze the backbone and train LoRA adapters (all linear layers) plus the head.

        Returns ``{"trainable": n, "total": N, "share": n / N}`` in parameters.
        """
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=int(rank), lora_alpha=int(alpha), lora_dropout=0.0, target_modules="all-linear")
        self.backbone = get_peft_model(self.backbone, cfg)
        self.info["lora"] = {"rank": int(rank), "alpha": int(alpha), "target_modules": "all-linear"}
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.parameters())
        return {"trainable": trainable, "total": total, "share": trainable / total}

    def merge_lora(self) -> None:
        """Fold LoRA adapters into the backbone weights (no-op without LoRA)."""
        if hasattr(self.backbone, "merge_and_unload"):
            self.backbone = self.backbone.merge_and_unload()

    # -- scoring -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text: the tail of at most ``max_length`` tokens, EOS appended."""
        ids = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        keep = self.max_length - (1 if self.eos_id is not None else 0)
        rows = []
        for seq in ids:
            seq = list(seq)[-keep:] if keep > 0 else []
            if self.eos_id is not None and (not seq or seq[-1] != self.eos_id):
                seq.append(self.eos_id)
            rows.append(seq)
        return rows

    def collate(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        """Right-padded ``input_ids`` and ``attention_mask`` on the model's device."""
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        return {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """:meth:`tokenize` then :meth:`collate`."""
        return self.collate(self.tokenize(texts))

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The backbone's token embeddings of ``input_ids`` (B, T, H)."""
        return self.backbone.get_input_embeddings()(input_ids)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores (B,) of right-padded sequences, from ids or from token embeddings."""
        if attention_mask is None:
            raise ValueError("attention_mask is required: it locates the last real token")
        if inputs_embeds is not None:
            out = self.backbone(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        else:
            out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        last = attention_mask.sum(dim=1).clamp(min=1) - 1
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return self.head(h).squeeze(-1)

    @torch.no_grad()
    def score(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Raw scores of ``texts`` as float64 (B,), in batches of ``batch_size`` texts."""
        was_training = self.training
        self.eval()
        rows = self.tokenize(texts) if len(texts) else []
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = np.argsort([len(r) for r in rows], kind="stable")
        scores = np.empty(len(rows), dtype=np.float64)
        for i in range(0, len(rows), batch_size):
            idx = order[i : i + batch_size]
            batch = self.collate([rows[j] for j in idx])
            scores[idx] = self(**batch).float().cpu().numpy()
        self.train(was_training)
        return scores

    def normalized(self, scores: np.ndarray) -> np.ndarray:
        """``(scores - mean) / std`` with the mean/std of the training data's scores."""
        mean = float(self.info.get("score_mean", 0.0))
        std = float(self.info.get("score_std", 1.0)) or 1.0
        return (scores - mean) / std
