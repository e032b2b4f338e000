"""``python -m ttft predict``: augmented, batched, voted predictions of a run or a base model; with --json the last
line is one JSON object (n_tasks, accuracy, pass_at_2, vote_1, correct_pixels, correct_size, unanswered, val_loss,
predictions_per_second, out_dir, ...)."""

from __future__ import annotations

import argparse
import sys


def register(sub) -> None:
    from ttft.engine.predict_config import COLOR_CHOICES, DTYPES, PredictConfig

    h = PredictConfig.HELP
    p = sub.add_parser("predict", help="predict test outputs with augmented views and voting; writes predictions, "
                                       "metrics and a Kaggle submission",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="RUN_DIR", help=h["run"])
    src.add_argument("--base-model", metavar="MODEL", help=h["base_model"])
    p.add_argument("--dataset", help=h["dataset"])
    p.add_argument("--tasks", help="comma-separated task ids, or @FILE with one id per line")
    p.add_argument("--max-task-tokens", type=int, help=h["max_task_tokens"])
    p.add_argument("--views", type=int, default=8, help=h["views"])
    p.add_argument("--transforms", help="comma-separated: " + h["transforms"])
    p.add_argument("--colors", choices=COLOR_CHOICES, default="keep-bg", help=h["colors"])
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=False, help=h["shuffle"])
    p.add_argument("--seed", type=int, default=0, help=h["seed"])
    p.add_argument("--sample", action=argparse.BooleanOptionalAction, default=False, help=h["sample"])
    p.add_argument("--temperature", type=float, default=1.0, help=h["temperature"])
    p.add_argument("--top-p", type=float, default=1.0, help=h["top_p"])
    p.add_argument("--batch-size", type=int, default=0, help=h["batch_size"])
    p.add_argument("--max-new-tokens", type=int, default=0, help=h["max_new_tokens"])
    p.add_argument("--max-seq-len", type=int, default=0, help=h["max_seq_len"])
    p.add_argument("--val-loss", action=argparse.BooleanOptionalAction, default=True, help=h["val_loss"])
    p.add_argument("--format", choices=["minimal", "shape+rows", "separated"], help=h["format"])
    p.add_argument("--device", default="auto", help=h["device"])
    p.add_argument("--dtype", choices=DTYPES, default="auto", help=h["dtype"])
    p.add_argument("--threads", type=int, default=0, help=h["threads"])
    p.add_argument("--name", help=h["name"])
    p.add_argument("--out", metavar="DIR", help=h["out"])
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_predict)


def config_from_args(args):
    from ttft.cli.train import _parse_tasks
    from ttft.engine.predict_config import PredictConfig

    kw = {k: getattr(args, k) for k in ("run", "base_model", "dataset", "max_task_tokens", "views", "colors",
                                        "shuffle", "seed", "sample", "temperature", "top_p", "batch_size",
                                        "max_new_tokens", "max_seq_len", "val_loss", "format", "device", "dtype",
                                        "threads", "name", "out")}
    if args.tasks:
        kw["tasks"] = tuple(_parse_tasks(args.tasks))
    if args.transforms:
        kw["transforms"] = tuple(t.strip() for t in args.transforms.split(",") if t.strip())
    return PredictConfig(**kw)


def cmd_predict(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.predict import run_prediction
    from ttft.engine.predict_config import PredictError

    try:
        cfg = config_from_args(args).validate()
        res = run_prediction(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    except PredictError as e:
        raise CliError(str(e)) from None
    if args.json:
        _print_json(res.to_json())
    else:
        s = res.summary

        def pct(v):
            return "—" if v is None else f"{100 * v:.1f}%"

        print(f"{res.status}: {s['n_tasks']} task(s), pass@2 {pct(s.get('pass_at_2'))}, vote_1 "
              f"{pct(s.get('vote_1'))}, accuracy {pct(s.get('accuracy'))}, pixels {pct(s.get('correct_pixels'))}, "
              f"size {pct(s.get('correct_size'))}, unanswered {pct(s.get('unanswered'))}, val loss "
              f"{s.get('val_loss')}; {res.predictions_per_second:.1f} predictions/s\nout: {res.out_dir}")
    return 0
