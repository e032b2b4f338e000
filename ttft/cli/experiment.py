"""``python -m ttft experiment seed-ablation``: the seed experiment's TTFT ablation, end to end."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def register(sub) -> None:
    from ttft.engine.commands import add_experiment_arguments

    p = sub.add_parser("experiment", help="built-in experiments (seed-ablation)")
    ex = p.add_subparsers(dest="experiment", required=True)
    s = ex.add_parser(
        "seed-ablation",
        help="baseline vs TTFT with n-1, + geometric, + colour, preserve original "
        "colours, n-2: val loss, accuracy, pass@2 and time per row",
    )
    add_experiment_arguments(s)
    s.set_defaults(func=cmd_seed_ablation)


def cmd_seed_ablation(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.commands import check_experiment_ready, read_config_file
    from ttft.engine.experiment import experiments_root, run_ablation
    from ttft.engine.experiment_config import AblationConfig
    from ttft.options import ConfigError, apply_args

    out = Path(args.out) if args.out else experiments_root() / time.strftime("seed-ablation-%Y%m%d-%H%M%S")
    try:
        base = read_config_file(out / "config.json", flag="--out") if (out / "config.json").exists() else None
        if base is not None and hasattr(args, "tasks") and not hasattr(args, "max_task_tokens"):
            base["max_task_tokens"] = None  # tasks named explicitly: no token cut unless asked for
        elif base is None and hasattr(args, "tasks") and not hasattr(args, "max_task_tokens"):
            base = {"max_task_tokens": None}
        cfg = apply_args(AblationConfig, args, base)
        check_experiment_ready(cfg)
    except ConfigError as e:
        raise CliError(str(e)) from None
    res = run_ablation(cfg, out, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        _print_json({"out_dir": str(out), **res})
    else:
        print((out / "results.md").read_text())
    return 0
