"""``rlseek offline ...``: collect D4RL-style datasets, inspect and export them, compare BCQ with BC.

::

    rlseek offline collect --env ID --kind KIND --steps N --out F [--seed S] [--policy CKPT]
                           [--policy-dir DIR] [--expert-steps N] [--minari-root DIR]
    rlseek offline info F [--json]
    rlseek offline export-minari --dataset F --root DIR [--id NAMESPACE/NAME-v0]
    rlseek offline compare --dataset F --algos bcq,bc [--seeds K] [--steps N] --out DIR
                           [--episodes N] [--device D] [--compile-graph] [--jobs J] [--set ALGO.FIELD=V]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from rlseek.errors import RlseekError


def cmd_collect(args: argparse.Namespace) -> int:
    from rlseek.offline.collect import CollectSettings, collect

    settings = CollectSettings(expert_steps=args.expert_steps, expert_seed=args.expert_seed,
                               eval_every=args.eval_every, reference_episodes=args.reference_episodes)
    if settings.reference_episodes < 1 or settings.expert_steps < 1 or settings.eval_every < 1:
        raise RlseekError("--expert-steps, --eval-every and --reference-episodes must be >= 1")
    ds = collect(args.env, args.kind, args.steps, args.out, seed=args.seed, policy=args.policy,
                 policy_dir=args.policy_dir, settings=settings, progress=sys.stdout.isatty())
    meta = ds.metadata
    beh, ref = meta["behaviour"], meta["reference"]
    print(f"wrote {args.out}: {meta['kind']} data of {meta['env_id']}, {meta['n_transitions']} transitions, "
          f"{meta['n_episodes']} episodes ({meta['n_terminals']} terminated, {meta['n_timeouts']} timeouts)")
    if beh["mean_return"] is not None:
        print(f"behaviour return {beh['mean_return']:.3f} over {beh['episodes']} complete episodes "
              f"(normalized {beh['normalized_mean']:.1f}); references: random {ref['random_return']:.3f}, "
              f"expert {ref['expert_return']:.3f} ({ref['episodes']} episodes each)")
    print(f"data sha256 {meta['data_sha256']}")
    if args.minari_root:
        from rlseek.offline.minari_export import export_minari

        print(f"Minari dataset: {export_minari(ds, args.minari_root)}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rlseek.offline.dataset import read_dataset

    ds = read_dataset(args.dataset)
    if args.json:
        sys.stdout.write(json.dumps(ds.metadata, indent=2) + "\n")
        return 0
    m = ds.metadata
    for key in ("env_id", "env_version", "kind", "n_transitions", "n_episodes", "n_terminals", "n_timeouts",
                "seed", "data_sha256"):
        print(f"{key}: {m.get(key)}")
    print(f"behaviour: {m.get('behaviour')}")
    print(f"reference: random {m['reference'].get('random_return')}, expert {m['reference'].get('expert_return')}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from rlseek.offline.dataset import read_dataset
    from rlseek.offline.minari_export import export_minari

    print(f"Minari dataset: {export_minari(read_dataset(args.dataset), args.root, args.id)}")
    return 0


def parse_params(items: list[str] | None, algos: list[str]) -> dict[str, dict[str, Any]]:
    """``--set bcq.batch_size=256`` -> {"bcq": {"batch_size": 256}} (values parsed as YAML)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        algo, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise RlseekError(f"--set '{item}': expected ALGO.FIELD=VALUE, e.g. bcq.batch_size=256")
        if algo not in algos:
            raise RlseekError(f"--set '{item}': '{algo}' is not among --algos ({', '.join(algos)})")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        out.setdefault(algo, {})[name] = value
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from rlseek.offline.compare import CompareSettings, compare, parse_algos

    algos = parse_algos(args.algos)
    settings = CompareSettings(algos=algos, seeds=args.seeds, steps=args.steps, eval_episodes=args.episodes,
                               device=args.device, compile_graph=args.compile_graph, jobs=args.jobs,
                               params=parse_params(args.set, algos), tracking=not args.no_tracking,
                               tracking_uri=args.tracking_uri or "")
    results = compare(args.dataset, args.out, settings, log=lambda line: print(line, flush=True))
    from rlseek.offline.report import markdown

    print(markdown(results), end="")
    print(f"results in {args.out} (results.json, results.md, plot.png, runs/)")
    return 0


def register_cli(sub: Any) -> None:
    """Add ``rlseek offline ...`` to the main parser."""
    from rlseek.offline.collect import KINDS

    p = sub.add_parser("offline", help="offline RL: collect datasets, compare BCQ with BC")
    osub = p.add_subparsers(dest="offline_command", parser_class=type(p))
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])

    c = osub.add_parser("collect", help="collect a D4RL-style dataset (HDF5)")
    c.add_argument("--env", required=True, help="Gymnasium env id, e.g. rlseek/Reacher-v0")
    c.add_argument("--kind", required=True, help=f"one of: {', '.join(KINDS)}")
    c.add_argument("--steps", type=int, required=True, help="transitions to collect")
    c.add_argument("--out", required=True, help="dataset file to write (.h5); never overwritten")
    c.add_argument("--seed", type=int, default=0, help="base reset seed and action-sampling seed")
    c.add_argument("--policy", help="policy checkpoint for --kind policy (.safetensors, SB3 .zip or run dir)")
    c.add_argument("--policy-dir", help="cache of the trained SAC expert (default: policies/ next to --out)")
    c.add_argument("--expert-steps", type=int, default=30_000, help="SAC training steps for the expert")
    c.add_argument("--expert-seed", type=int, default=0, help="seed of the SAC expert's training")
    c.add_argument("--eval-every", type=int, default=1_000, help="SAC snapshot interval (env steps)")
    c.add_argument("--reference-episodes", type=int, default=100, help="episodes per reference return")
    c.add_argument("--minari-root", help="also export the dataset to Minari's format under this folder")
    c.set_defaults(func=cmd_collect)

    i = osub.add_parser("info", help="show a dataset's metadata (verifies its fingerprint)")
    i.add_argument("dataset")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    e = osub.add_parser("export-minari", help="export a dataset to Minari's format")
    e.add_argument("--dataset", required=True)
    e.add_argument("--root", required=True, help="Minari datasets folder (MINARI_DATASETS_PATH)")
    e.add_argument("--id", help="Minari dataset id (default rlseek/<env>/<kind>-v0)")
    e.set_defaults(func=cmd_export)

    m = osub.add_parser("compare", help="train and evaluate offline algorithms over seeds (IQM, CIs)")
    m.add_argument("--dataset", required=True)
    m.add_argument("--algos", default="bcq,bc", help="comma-separated: bcq, bc (default bcq,bc)")
    m.add_argument("--seeds", type=int, default=5, help="seeds per algorithm (default 5)")
    m.add_argument("--steps", type=int, default=5_000, help="gradient steps per run (default 5000)")
    m.add_argument("--episodes", type=int, default=10, help="evaluation episodes per run (default 10)")
    m.add_argument("--out", required=True, help="result folder; never overwritten")
    m.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    m.add_argument("--compile-graph", action="store_true", help="d3rlpy compile_graph (CUDA only)")
    m.add_argument("--jobs", type=int, default=1, help="runs trained at once, in processes (default 1)")
    m.add_argument("--set", action="append", metavar="ALGO.FIELD=V", help="d3rlpy config override (repeatable)")
    m.add_argument("--no-tracking", action="store_true", help="do not record the comparison in MLflow")
    m.add_argument("--tracking-uri", metavar="URI",
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else runs/mlflow.db)")
    m.set_defaults(func=cmd_compare)
