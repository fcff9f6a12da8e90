"""``rlseek runs list|show|compare|retire``: the MLflow-backed run registry.

::

    rlseek runs list [--active] [--json] [--tracking-uri URI]
    rlseek runs show RUN [--json] [--tracking-uri URI]
    rlseek runs compare RUN RUN [RUN ...] [--json] [--tracking-uri URI]
    rlseek runs retire RUN --why "..." [--json] [--tracking-uri URI]

RUN is a run id, a unique id prefix (>= 6 characters), a run name or a run directory. The store
read is ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else the embedded default
(``runs/mlflow.db``; see :mod:`rlseek.tracking.settings`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rlseek.cli.output import print_json


def _print_json(obj: Any) -> None:
    print_json(obj)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def cmd_list(args: argparse.Namespace) -> int:
    from rlseek.tracking.registry import headline, list_runs
    from rlseek.tracking.settings import reading_uri

    uri = reading_uri(args.tracking_uri)
    runs = list_runs(uri, include_retired=not args.active)
    if args.json:
        _print_json([{k: v for k, v in r.items() if k not in ("params", "tags")} for r in runs])
        return 0
    if not runs:
        print(f"no tracked runs in {uri}")
        return 0
    rows = []
    for r in runs:
        head = headline(r)
        rows.append([r["run_id"][:12], r["name"], r["kind"], r["algo"], r["env_id"], r["status"],
                     r["start_time"], f"{head[0]}={head[1]:.4g}" if head else None,
                     "yes" if r["retired"] else ""])
    sys.stdout.write(_table(["run", "name", "kind", "algo", "env", "status", "started", "headline", "retired"], rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from rlseek.tracking.registry import show
    from rlseek.tracking.settings import reading_uri

    rec = show(reading_uri(args.tracking_uri), args.run)
    if args.json:
        _print_json(rec)
        return 0
    for key in ("run_id", "name", "kind", "algo", "env_id", "status", "start_time", "end_time", "run_dir"):
        print(f"{key}: {_fmt(rec[key])}")
    if rec["retired"]:
        print(f"retired: {rec['retired_why']} ({rec['tags'].get('rlseek.retired_at')})")
    for title in ("params", "metrics", "tags"):
        print(f"\n{title}:")
        for k, v in rec[title].items():
            print(f"  {k}: {_fmt(v)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rlseek.tracking.registry import compare
    from rlseek.tracking.settings import reading_uri

    res = compare(reading_uri(args.tracking_uri), args.runs)
    if args.json:
        _print_json(res)
        return 0
    header = ["", *[f"{r['name']} ({r['run_id'][:8]})" for r in res["runs"]]]
    rows = [["kind", *[r["kind"] for r in res["runs"]]], ["algo", *[r["algo"] for r in res["runs"]]],
            ["env", *[r["env_id"] for r in res["runs"]]]]
    rows += [[f"param {k}", *vals] for k, vals in res["params_differing"].items()]
    rows += [[k, *vals] for k, vals in res["metrics"].items() if k.startswith("summary/")]
    sys.stdout.write(_table(header, rows))
    return 0


def cmd_retire(args: argparse.Namespace) -> int:
    from rlseek.tracking.registry import retire
    from rlseek.tracking.settings import reading_uri

    rec = retire(reading_uri(args.tracking_uri), args.run, args.why)
    if args.json:
        _print_json(rec)
    else:
        print(f"retired {rec['name']} ({rec['run_id']}): {rec['retired_why']}")
    return 0


def register_cli(subparsers: Any) -> None:
    """Add ``rlseek runs ...`` to the ``rlseek`` parser."""
    p = subparsers.add_parser("runs", help="the run registry (MLflow): list, show, compare, retire")
    p.set_defaults(func=lambda _a: (p.print_help(sys.stderr), 2)[1])
    sub = p.add_subparsers(dest="runs_command", parser_class=type(p))

    def common(s: argparse.ArgumentParser) -> None:
        s.add_argument("--json", action="store_true", help="one JSON document on stdout")
        s.add_argument("--tracking-uri", metavar="URI",
                       help="MLflow store to read (default: MLFLOW_TRACKING_URI, else runs/mlflow.db)")

    s = sub.add_parser("list", help="tracked runs, newest first")
    s.add_argument("--active", action="store_true", help="leave retired runs out")
    common(s)
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="one run's params, metrics and tags")
    s.add_argument("run", metavar="RUN", help="run id (or prefix), run name or run directory")
    common(s)
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("compare", help="runs side by side: differing params, summary metrics")
    s.add_argument("runs", nargs="+", metavar="RUN")
    common(s)
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("retire", help="record that a run is retired, and why")
    s.add_argument("run", metavar="RUN")
    s.add_argument("--why", required=True, help="the retirement reason (recorded verbatim)")
    common(s)
    s.set_defaults(func=cmd_retire)
