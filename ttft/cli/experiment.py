"""``python -m ttft experiment seed-ablation``: the seed experiment's TTFT ablation, end to end."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def register(sub) -> None:
    from ttft.engine.experiment_config import ROWS, AblationConfig

    h = AblationConfig.HELP
    p = sub.add_parser("experiment", help="built-in experiments (seed-ablation)")
    ex = p.add_subparsers(dest="experiment", required=True)
    s = ex.add_parser("seed-ablation", help="baseline vs TTFT with n-1, + geometric, + colour, preserve original "
                                            "colours, n-2: val loss, accuracy, pass@2 and time per row")
    s.add_argument("--dataset", help=h["dataset"])
    s.add_argument("--tasks", help="comma-separated task ids")
    s.add_argument("--max-task-tokens", type=int, help=h["max_task_tokens"])
    s.add_argument("--limit", type=int, help=h["limit"])
    s.add_argument("--rows", help="comma-separated rows (default: all): " + ", ".join(ROWS))
    s.add_argument("--base-model", help=h["base_model"])
    s.add_argument("--steps", type=int, help=h["steps"])
    s.add_argument("--lr", type=float, help=h["lr"])
    s.add_argument("--lora-r", type=int, help=h["lora_r"])
    s.add_argument("--views", type=int, help=h["views"])
    s.add_argument("--seed", type=int, help=h["seed"])
    s.add_argument("--gpus", type=int, help=h["gpus"])
    s.add_argument("--device", help=h["device"])
    s.add_argument("--out", help="experiment folder (default: $TTFT_RUNS_DIR/experiments/seed-ablation-<time>); "
                                 "rerunning into it skips the rows already done")
    s.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    s.set_defaults(func=cmd_seed_ablation)


def cmd_seed_ablation(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.experiment import experiments_root, run_ablation
    from ttft.engine.experiment_config import AblationConfig
    from ttft.runs.rundir import read_json

    out = Path(args.out) if args.out else experiments_root() / time.strftime("seed-ablation-%Y%m%d-%H%M%S")
    prev = read_json(out / "config.json") if args.out else None
    d = AblationConfig().to_json() if prev is None else AblationConfig.from_json(prev).to_json()
    for k in ("dataset", "max_task_tokens", "limit", "base_model", "steps", "lr", "lora_r", "views", "seed", "gpus",
              "device"):
        if getattr(args, k) is not None:
            d[k] = getattr(args, k)
    if args.tasks:
        d["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
        if args.max_task_tokens is None:
            d["max_task_tokens"] = None
    if args.rows:
        d["rows"] = [r.strip() for r in args.rows.split(",") if r.strip()]
    try:
        cfg = AblationConfig.from_json(d).validate()
        from ttft.engine.experiment import select_ids

        if not select_ids(cfg):
            raise CliError("no task selected (test outputs must be known)")
    except ValueError as e:
        raise CliError(str(e)) from None
    res = run_ablation(cfg, out, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        _print_json({"out_dir": str(out), **res})
    else:
        print((out / "results.md").read_text())
    return 0
