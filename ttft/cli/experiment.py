"""``python -m ttft experiment sweep|seed-ablation``: grid experiments over any training or prediction option, and
the seed experiment's TTFT ablation (a predefined sweep), end to end."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def register(sub) -> None:
    from ttft.engine.commands import add_experiment_arguments, add_sweep_arguments

    p = sub.add_parser("experiment", help="experiments: sweep (a grid of rows), seed-ablation")
    ex = p.add_subparsers(dest="experiment", required=True)
    s = ex.add_parser(
        "seed-ablation",
        help="baseline vs TTFT with n-1, + geometric, + colour, preserve original "
        "colours, n-2: val loss, accuracy, pass@2 and time per row (the predefined sweep seed-ablation)",
    )
    add_experiment_arguments(s)
    s.set_defaults(func=cmd_seed_ablation)
    w = ex.add_parser(
        "sweep",
        help="rows that differ in any training or prediction option (--grid NAME=V1,V2, --rows-from FILE, "
        "--preset), the same tasks and seeds: val loss, accuracy, pass@2, tasks better than the first row, time",
    )
    add_sweep_arguments(w)
    w.set_defaults(func=cmd_sweep)


def _out(args, name: str) -> Path:
    from ttft.engine.experiment import experiments_root

    return Path(args.out) if args.out else experiments_root() / time.strftime(f"{name}-%Y%m%d-%H%M%S")


def _progress(m: str) -> None:
    print(m, file=sys.stderr, flush=True)


def cmd_seed_ablation(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.commands import check_experiment_ready, saved_experiment
    from ttft.engine.experiment import run_ablation
    from ttft.engine.experiment_config import AblationConfig
    from ttft.options import ConfigError, apply_args

    out = _out(args, "seed-ablation")
    try:
        base = saved_experiment(out)
        if base is not None and hasattr(args, "tasks") and not hasattr(args, "max_task_tokens"):
            base["max_task_tokens"] = None  # tasks named explicitly: no token cut unless asked for
        elif base is None and hasattr(args, "tasks") and not hasattr(args, "max_task_tokens"):
            base = {"max_task_tokens": None}
        cfg = apply_args(AblationConfig, args, base)
        check_experiment_ready(cfg)
        res = run_ablation(cfg, out, progress=_progress)
    except ConfigError as e:
        raise CliError(str(e)) from None
    if args.json:
        _print_json({"out_dir": str(out), **res})
    else:
        print((out / "results.md").read_text())
    return 0


def cmd_sweep(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.commands import check_sweep_ready, sweep_from_args
    from ttft.engine.experiment import run_sweep
    from ttft.options import ConfigError

    out = _out(args, "sweep")
    try:
        cfg, rows = sweep_from_args(args)
        check_sweep_ready(cfg, rows, out)
        res = run_sweep(cfg, rows, out, progress=_progress)
    except ConfigError as e:
        raise CliError(str(e)) from None
    if args.json:
        recs = [res["rows"][n] for n in res["config"]["rows"] if n in res["rows"]]
        _print_json({"out_dir": str(out), "config": res["config"], "status": res["status"], "rows": recs})
    else:
        print((out / "results.md").read_text())
    return 0
