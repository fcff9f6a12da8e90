"""``rlseek reward-model train|eval`` and ``rlseek prefs synth|label|augment``.

Every handler validates its input (arguments, data files, model folders) before it writes
anything; outputs are written atomically and never replace an existing model directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rlseek.cli.output import err, group_help, print_json
from rlseek.errors import RlseekError
from rlseek.models.loader import DEFAULT_MODEL
from rlseek.reward_models.data import DEFAULT_EVAL_SPLIT


# -- reward-model train ---------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from rlseek.api import train_reward_model
    from rlseek.reward_models.adversarial import AdversarialConfig
    from rlseek.reward_models.trainer import TrainConfig

    try:
        adv = AdversarialConfig(args.adv_epsilon, args.adv_steps, args.adv_weight)
    except ValueError as exc:
        raise RlseekError(str(exc)) from None
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr if args.lr is not None else (1e-3 if args.lora else 1e-4),
        center_rewards=args.center_rewards, eval_every=args.eval_every, patience=args.patience,
        lora=args.lora, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
        adversarial=adv if args.adversarial else None, seed=args.seed,
    )
    summary = train_reward_model(
        args.train, args.out, eval_data=args.eval, eval_split=args.eval_split, backbone=args.backbone,
        config=cfg, attack=adv, max_length=args.max_length, device=args.device,
        log=None if args.quiet else err, tracking=not args.no_tracking, tracking_uri=args.tracking_uri,
    )
    if args.json:
        print_json(summary)
    else:
        print(f"saved reward model to {summary['out']}: eval accuracy {summary['eval_accuracy']:.4f} on "
              f"{summary['eval_pairs']} pairs (under PGD eps={adv.epsilon:g}, {adv.steps} steps: "
              f"{summary['eval_adversarial_accuracy']:.4f}); {summary['pairs_per_second']:.1f} pairs/s")
    return 0


# -- reward-model eval ----------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> int:
    from rlseek.api import evaluate_reward_model
    from rlseek.reward_models.adversarial import AdversarialConfig

    try:
        adv = AdversarialConfig(args.adv_epsilon, args.adv_steps) if args.adversarial else None
    except ValueError as exc:
        raise RlseekError(str(exc)) from None
    result = evaluate_reward_model(args.model, args.data, attack=adv, device=args.device, log=err)
    if args.json:
        print_json(result)
    else:
        for k, v in result.items():
            print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    return 0


# -- prefs synth / label --------------------------------------------------------------------
def cmd_synth(args: argparse.Namespace) -> int:
    from rlseek.api import synthesize_preferences

    stats = synthesize_preferences(
        args.task, args.n, args.out, noise=args.noise, seed=args.seed, policy=args.policy,
        temperature=args.temperature, heldout=args.heldout, score_term=args.score_term,
        device=args.device, imports=args.imports or [], force=args.force,
        log=None if args.quiet else err,
    )
    if args.json:
        print_json(stats)
    else:
        print(f"wrote {stats['n']} pairs to {stats['out']}; annotator agreement with its noiseless "
              f"preference {stats['agreement']:.4f} (tau={stats['temperature']:g}, "
              f"noise={stats['noise']:g}, {stats['skipped_ties']} tied pairs skipped)")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from rlseek.reward_models.data import PreferenceDataset
    from rlseek.reward_models.label import label_pairs, read_candidates
    from rlseek.runs import atomic_write_text, check_new_output

    if args.input is None:
        raise RlseekError("prefs label needs the candidate pairs: --in F (or --data F)")
    out = Path(args.out)
    if args.serve:
        from rlseek.reward_models.label_web import serve_labels

        if out.exists() and not out.is_file():
            raise RlseekError(f"output {out} exists and is not a file; choose a new --out")
        candidates = read_candidates(args.input)
        serve_labels(candidates, out, host=args.host, port=args.port, seed=args.seed)
        return 0
    check_new_output(out, "output file", args.force)
    candidates = read_candidates(args.input)
    pairs = label_pairs(candidates, sys.stdin, sys.stdout.write, seed=args.seed)
    if not pairs:
        print("no pairs labelled; nothing written")
        return 0
    atomic_write_text(out, PreferenceDataset(pairs).to_jsonl())
    print(f"wrote {len(pairs)} labelled pairs to {out}")
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from rlseek.reward_models.augment import augment_pairs
    from rlseek.reward_models.data import PreferenceDataset
    from rlseek.runs import atomic_write_text, check_new_output

    out = Path(args.out)
    check_new_output(out, "output file", args.force)
    data = PreferenceDataset.from_jsonl(args.input)
    if data.duplicates:
        err("warning: " + data.duplicate_report())
    pairs, stats = augment_pairs(data, copies=args.copies, seed=args.seed, min_valence=args.min_valence)
    atomic_write_text(out, PreferenceDataset(pairs).to_jsonl())
    stats["out"] = str(out)
    if args.json:
        print_json(stats)
    else:
        print(f"wrote {len(pairs)} pairs to {out}: {stats['original']} original, {stats['added']} "
              f"lexicon-swapped copies ({stats['unchanged']} pairs had no lexicon word)")
    return 0


# -- parser ---------------------------------------------------------------------------------
def register_cli(subparsers: Any) -> None:
    """Add ``reward-model`` and ``prefs`` to the ``rlseek`` parser."""
    rm = subparsers.add_parser("reward-model", help="train and evaluate Bradley–Terry reward models")
    rm.set_defaults(func=group_help(rm))
    rsub = rm.add_subparsers(dest="rm_command", parser_class=type(rm))

    s = rsub.add_parser("train", help="train a reward model on preference pairs (JSONL)")
    s.add_argument("--train", required=True, metavar="F", help="training pairs (JSONL, TRL format)")
    ev = s.add_mutually_exclusive_group()
    ev.add_argument("--eval", metavar="F", help="evaluation pairs (JSONL)")
    ev.add_argument("--eval-split", type=float, metavar="X",
                    help=f"hold out this fraction of --train for evaluation (default {DEFAULT_EVAL_SPLIT})")
    s.add_argument("--backbone", default=DEFAULT_MODEL, metavar="P",
                   help="transformers model folder (default: the bundled rlseek/tiny-lm)")
    s.add_argument("--epochs", type=int, default=3)
    s.add_argument("--batch-size", type=int, default=16, help="pairs per optimizer step")
    s.add_argument("--lr", type=float, help="learning rate (default 1e-4, with --lora 1e-3)")
    s.add_argument("--max-length", type=int, default=512, help="most tokens scored per text")
    s.add_argument("--center-rewards", type=float, default=0.0, metavar="C",
                   help="coefficient of the reward-centering term C·(r_c + r_r)² (0 = off)")
    s.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0 = per epoch)")
    s.add_argument("--patience", type=int, default=2,
                   help="stop after this many evaluations without better accuracy (0 = never)")
    s.add_argument("--lora", action="store_true", help="train LoRA adapters instead of the whole backbone")
    s.add_argument("--lora-rank", type=int, default=8)
    s.add_argument("--lora-alpha", type=int, default=16)
    s.add_argument("--adversarial", action="store_true",
                   help="also train on PGD-perturbed input embeddings")
    s.add_argument("--adv-epsilon", type=float, default=0.1,
                   help="L-inf radius, in units of the embedding matrix's RMS entry")
    s.add_argument("--adv-steps", type=int, default=5)
    s.add_argument("--adv-weight", type=float, default=1.0, help="weight of the perturbed-pair loss")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="auto (GPU when available), cpu or cuda")
    s.add_argument("--out", required=True, metavar="DIR", help="new model directory (must not exist)")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    s.add_argument("--quiet", action="store_true", help="no per-evaluation progress lines")
    s.add_argument("--no-tracking", action="store_true", help="do not record the training in MLflow")
    s.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else runs/mlflow.db)")
    s.set_defaults(func=cmd_train)

    s = rsub.add_parser("eval", help="accuracy of a reward model on preference pairs")
    s.add_argument("--model", required=True, metavar="DIR")
    s.add_argument("--data", required=True, metavar="F")
    s.add_argument("--adversarial", action="store_true", help="also report accuracy under PGD")
    s.add_argument("--adv-epsilon", type=float, default=0.1)
    s.add_argument("--adv-steps", type=int, default=5)
    s.add_argument("--device", default="auto")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    pr = subparsers.add_parser("prefs", help="collect preference pairs (synthesized or by hand)")
    pr.set_defaults(func=group_help(pr))
    psub = pr.add_subparsers(dest="prefs_command", parser_class=type(pr))

    s = psub.add_parser("synth", help="sample completion pairs and label them with a scripted annotator")
    s.add_argument("--task", required=True, metavar="ENV_ID", help="e.g. rlseek/Reviews-v0")
    s.add_argument("--n", type=int, required=True, help="number of pairs")
    s.add_argument("--noise", type=float, default=0.1, help="probability of flipping a label")
    s.add_argument("--temperature", type=float, help="annotator temperature tau (score units)")
    s.add_argument("--score-term", metavar="NAME",
                   help="text reward term the annotator scores by (default: the task's, e.g. sentiment)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--policy", default=DEFAULT_MODEL, help="causal LM writing the completions")
    s.add_argument("--heldout", action="store_true", help="use the task's held-out prompts")
    s.add_argument("--device", default="cpu")
    s.add_argument("--import", dest="imports", action="append", metavar="MODULE")
    s.add_argument("--out", required=True, metavar="F")
    s.add_argument("--force", action="store_true", help="replace an existing output file")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = psub.add_parser("label", help="label candidate pairs by hand, in the terminal or a web page")
    s.add_argument("--in", "--data", dest="input", metavar="F",
                   help="candidate pairs (JSONL: 'a' and 'b', or 'chosen' and 'rejected'; optional 'prompt')")
    s.add_argument("--out", required=True, metavar="G",
                   help="labels (JSONL, TRL format); with --serve an existing file is resumed")
    s.add_argument("--seed", type=int, default=0, help="seed of the order in which sides are shown")
    s.add_argument("--force", action="store_true", help="replace an existing output file (terminal mode)")
    s.add_argument("--serve", action="store_true",
                   help="label in a local web page instead of the terminal (each label is saved at once)")
    s.add_argument("--host", default="127.0.0.1", help="address the page listens on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8765, help="port of the page (default 8765; 0 = a free port)")
    s.set_defaults(func=cmd_label)

    s = psub.add_parser("augment", help="add lexicon-swapped copies of preference pairs (wider sentiment vocabulary)")
    s.add_argument("--in", dest="input", required=True, metavar="F", help="preference pairs (JSONL)")
    s.add_argument("--out", required=True, metavar="G", help="the originals followed by the copies (JSONL)")
    s.add_argument("--copies", type=int, default=1, help="swapped copies per pair (default 1)")
    s.add_argument("--min-valence", type=float, default=1.0,
                   help="least |mean valence| (VADER's -4..4 scale) of a substitute word")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--force", action="store_true", help="replace an existing output file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_augment)
