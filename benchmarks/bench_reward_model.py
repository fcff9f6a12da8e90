"""Reward-model training speed: rlseek's BradleyTerryTrainer against TRL's RewardTrainer.

Both train the same backbone (``AutoModel`` + scalar head in rlseek, TRL's
``AutoModelForSequenceClassification`` with ``num_labels=1``) on the same preference pairs, with
the same batch size, epochs, learning rate (AdamW, linear decay, no warmup), grad clip 1.0,
dropout off, EOS appended and fp32, in one process, one after the other. Printed side by side:

* training pairs per second: pairs × epochs / seconds inside the training loop (rlseek: the sum
  of its optimizer steps; TRL: ``train_runtime`` of ``Trainer.train``; tokenization is excluded
  for both);
* wall seconds including tokenization and model setup;
* held-out accuracy of each trained model (share of pairs with r_chosen > r_rejected, both
  computed by rlseek's evaluator on the same texts);
* the ratio rlseek / TRL of pairs per second.

Data: ``--train``/``--eval`` JSONL files, or (default) pairs synthesized for
``rlseek/Reviews-v0`` (train prompts for training, held-out prompts for evaluation).

TRL is an optional dependency (the ``bench`` extra); without it only rlseek's figures print.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_reward_model.py --n-train 1000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rlseek.reward_models.data import PreferenceDataset
from rlseek.reward_models.synth import synthesize
from rlseek.reward_models.trainer import BradleyTerryTrainer, TrainConfig, evaluate
from rlseek.rewards.learned.model import RewardModel


def load_data(args: argparse.Namespace) -> tuple[PreferenceDataset, PreferenceDataset]:
    if args.train and args.eval:
        return PreferenceDataset.from_jsonl(args.train), PreferenceDataset.from_jsonl(args.eval)
    train, _ = synthesize("rlseek/Reviews-v0", args.n_train, noise=0.1, seed=1, policy=args.backbone)
    ev, _ = synthesize("rlseek/Reviews-v0", args.n_eval, noise=0.1, seed=2, policy=args.backbone,
                       heldout=True)
    return PreferenceDataset(train), PreferenceDataset(ev)


def run_rlseek(args: argparse.Namespace, train: PreferenceDataset, ev: PreferenceDataset) -> dict:
    t0 = time.perf_counter()
    model = RewardModel.from_backbone(args.backbone, max_length=args.max_length, seed=args.seed).to(args.device)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                      patience=0, seed=args.seed, eval_every=10**9)
    result = BradleyTerryTrainer(model, cfg).train(train)
    wall = time.perf_counter() - t0
    return {"pairs_per_second": len(train) * args.epochs / result["train_seconds"],
            "wall_seconds": wall, "accuracy": evaluate(model, ev)["accuracy"]}


@torch.no_grad()
def seqcls_accuracy(model: torch.nn.Module, rm: RewardModel, ev: PreferenceDataset, batch: int = 64) -> float:
    """Accuracy of a sequence-classification reward model, on rlseek's tokenization of the pairs."""
    chosen = rm.tokenize([p.chosen_text for p in ev])
    rejected = rm.tokenize([p.rejected_text for p in ev])
    wins = []
    for i in range(0, len(ev), batch):
        for rows, out in ((chosen, "c"), (rejected, "r")):
            enc = rm.collate(rows[i : i + batch])
            enc = {k: v.to(model.device) for k, v in enc.items()}
            scores = model(**enc).logits.squeeze(-1).float().cpu().numpy()
            if out == "c":
                rc = scores
            else:
                wins.append(rc > scores)
    return float(np.mean(np.concatenate(wins)))


def run_trl(args: argparse.Namespace, train: PreferenceDataset, ev: PreferenceDataset) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification
    from trl import RewardConfig, RewardTrainer

    from rlseek.models.loader import load_tokenizer, resolve_model_path

    t0 = time.perf_counter()
    path = resolve_model_path(args.backbone)
    tokenizer = load_tokenizer(args.backbone)
    tokenizer.padding_side = "right"
    torch.manual_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    rows = [{"chosen": p.chosen_text, "rejected": p.rejected_text} for p in train]
    out_dir = Path(args.workdir) / "trl-out"
    config = RewardConfig(
        output_dir=str(out_dir), per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
        learning_rate=args.lr, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, optim="adamw_torch", max_length=args.max_length, pad_to_multiple_of=None,
        bf16=False, fp16=False, save_strategy="no", eval_strategy="no",
        logging_steps=10**6, report_to="none", seed=args.seed, dataloader_num_workers=0,
        use_cpu=args.device == "cpu", disable_tqdm=True,
    )
    trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer)
    out = trainer.train()
    wall = time.perf_counter() - t0
    rm = RewardModel.from_backbone(args.backbone, max_length=args.max_length)  # its tokenizer only
    acc = seqcls_accuracy(trainer.model.eval(), rm, ev)
    return {"pairs_per_second": len(train) * args.epochs / out.metrics["train_runtime"],
            "wall_seconds": wall, "accuracy": acc}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--backbone", default="rlseek/tiny-lm")
    p.add_argument("--train")
    p.add_argument("--eval")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-eval", type=int, default=500)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workdir", default="/tmp/rlseek-bench-rm")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args()
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:
        pass
    threads = torch.get_num_threads()
    train, ev = load_data(args)
    print(f"data: {len(train)} training pairs, {len(ev)} eval pairs; backbone {args.backbone}; "
          f"batch {args.batch_size}; epochs {args.epochs}; device {args.device}; torch threads {threads}")
    mine = run_rlseek(args, train, ev)
    try:
        import trl
    except ImportError:
        trl = None
    theirs = run_trl(args, train, ev) if trl is not None else None
    print(f"{'':<24}{'pairs/s':>10}{'wall s':>10}{'eval acc':>10}")
    print(f"{'rlseek BradleyTerry':<24}{mine['pairs_per_second']:>10.1f}{mine['wall_seconds']:>10.1f}"
          f"{mine['accuracy']:>10.4f}")
    figures = {"rlseek": mine, "n_train": len(train), "n_eval": len(ev), "batch_size": args.batch_size,
               "epochs": args.epochs, "device": args.device, "threads": threads,
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if theirs is None:
        print("trl is not installed (pip install -c constraints.txt '.[bench]'); no comparison")
    else:
        ratio = mine["pairs_per_second"] / theirs["pairs_per_second"]
        print(f"{'TRL ' + trl.__version__ + ' RewardTrainer':<24}{theirs['pairs_per_second']:>10.1f}"
              f"{theirs['wall_seconds']:>10.1f}{theirs['accuracy']:>10.4f}")
        print(f"ratio rlseek/TRL training pairs per second: {ratio:.2f}x")
        figures.update({"trl": theirs, "trl_version": trl.__version__, "ratio": ratio})
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
