"""``python -m ttft predict``: augmented, batched, voted predictions of a run or a base model; with --json the last
line is one JSON object (n_tasks, accuracy, pass_at_2, vote_1, correct_pixels, correct_size, unanswered, val_loss,
predictions_per_second, out_dir, ...)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    from ttft.engine.commands import add_predict_arguments

    p = sub.add_parser(
        "predict",
        help="predict test outputs with augmented views and voting; writes predictions, "
        "metrics and a Kaggle submission",
        description="Predict test outputs of a run (--run) or a bare base model (--base-model) with "
        "augmented views and voting.",
    )
    add_predict_arguments(p)
    p.set_defaults(func=cmd_predict)


def config_from_args(args):
    from ttft.engine.commands import config_from_args as from_args
    from ttft.engine.predict_config import PredictConfig

    return from_args(PredictConfig, args)


def cmd_predict(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.predict import run_prediction
    from ttft.options import ConfigError

    try:
        cfg = config_from_args(args)
        res = run_prediction(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    except ConfigError as e:
        raise CliError(str(e)) from None
    if args.json:
        _print_json(res.to_json())
    else:
        s = res.summary

        def pct(v):
            return "—" if v is None else f"{100 * v:.1f}%"

        print(
            f"{res.status}: {s['n_tasks']} task(s), pass@2 {pct(s.get('pass_at_2'))}, vote_1 "
            f"{pct(s.get('vote_1'))}, accuracy {pct(s.get('accuracy'))}, pixels {pct(s.get('correct_pixels'))}, "
            f"size {pct(s.get('correct_size'))}, unanswered {pct(s.get('unanswered'))}, val loss "
            f"{s.get('val_loss')}; {res.predictions_per_second:.1f} predictions/s\nout: {res.out_dir}"
        )
    return 0
