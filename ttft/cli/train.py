"""``python -m ttft train``: fine-tune or test-time fine-tune; one JSON object as the last line with --json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ttft.core.augment import DIHEDRAL, AugmentOptions
from ttft.core.encoding import EncodingConfig
from ttft.engine.models import ModelConfig, ModelError
from ttft.runs.rundir import read_json


def register(sub) -> None:
    from ttft.engine.train_config import SCHEDULERS, TrainConfig

    h = TrainConfig.HELP
    mh = ModelConfig.HELP
    p = sub.add_parser("train", help="fine-tune (finetune) or test-time fine-tune (ttft) a model on ARC tasks",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="a config.json (a run's, or saved from the app); flags given override it")
    p.add_argument("--mode", choices=["finetune", "ttft"], help=h["mode"])
    p.add_argument("--dataset", help=h["dataset"])
    p.add_argument("--tasks", help="comma-separated task ids, or @FILE with one id per line (default: all)")
    p.add_argument("--max-task-tokens", type=int, help=h["max_task_tokens"])
    p.add_argument("--per-task", action=argparse.BooleanOptionalAction, default=None, help=h["per_task"])
    p.add_argument("--leave-out", type=int, choices=[1, 2], help=h["leave_out"])
    p.add_argument("--keep-original-colors", type=float, help=h["keep_original_colors"])
    p.add_argument("--base-model", help=mh["base_model"])
    p.add_argument("--adapter", help=mh["adapter"])
    p.add_argument("--full-finetune", action=argparse.BooleanOptionalAction, default=None, help=mh["full_finetune"])
    p.add_argument("--init", choices=["pretrained", "random"], help=mh["init"])
    p.add_argument("--lora-r", type=int, help=mh["lora_r"])
    p.add_argument("--lora-alpha", type=int, help=mh["lora_alpha"])
    p.add_argument("--lora-dropout", type=float, help=mh["lora_dropout"])
    p.add_argument("--target-modules", help=mh["target_modules"])
    p.add_argument("--trust-remote-code", action="store_true", default=None, help=mh["trust_remote_code"])
    p.add_argument("--steps", type=int, help=h["steps"])
    p.add_argument("--lr", type=float, help=h["lr"])
    p.add_argument("--batch-size", type=int, help=h["batch_size"])
    p.add_argument("--grad-accum", type=int, help=h["grad_accum"])
    p.add_argument("--scheduler", choices=SCHEDULERS, help=h["scheduler"])
    p.add_argument("--warmup-steps", type=int, help=h["warmup_steps"])
    p.add_argument("--weight-decay", type=float, help=h["weight_decay"])
    p.add_argument("--max-seq-len", type=int, help=EncodingConfig.HELP["max_seq_len"])
    p.add_argument("--format", choices=["minimal", "shape+rows", "separated"], help=EncodingConfig.HELP["format"])
    p.add_argument("--loss-on", choices=["test", "outputs"], help=EncodingConfig.HELP["loss_on"])
    p.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                   help=EncodingConfig.HELP["chat_template"])
    p.add_argument("--too-long", choices=["trim", "drop"], help=h["too_long"])
    p.add_argument("--transforms", help="comma-separated dihedral transforms to draw from (" + ",".join(DIHEDRAL)
                                        + "), or 'identity' for none")
    p.add_argument("--colors", help=AugmentOptions.HELP["colors"])
    p.add_argument("--p-bg", type=float, help=AugmentOptions.HELP["p_bg"])
    p.add_argument("--shuffle", action=argparse.BooleanOptionalAction, default=None, help=AugmentOptions.HELP["shuffle"])
    p.add_argument("--compose", help="comma-separated composition steps: " + AugmentOptions.HELP["compose"])
    p.add_argument("--seed", type=int, help=h["seed"])
    p.add_argument("--device", help=h["device"])
    p.add_argument("--val", help=h["val"])
    p.add_argument("--val-max-tokens", type=int, help=h["val_max_tokens"])
    p.add_argument("--eval-steps", type=int, help=h["eval_steps"])
    p.add_argument("--logging-steps", type=int, help=h["logging_steps"])
    p.add_argument("--save-steps", type=int, help=h["save_steps"])
    p.add_argument("--report-to", help=h["report_to"])
    p.add_argument("--threads", type=int, help=h["threads"])
    p.add_argument("--run-dir", help="run directory (default: $TTFT_RUNS_DIR or ./runs, plus a new run id)")
    p.add_argument("--resume", metavar="RUN_DIR", nargs="?", const=True, default=None,
                   help="continue a stopped/failed run from its last checkpoint (its config is reused)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=cmd_train)
    register_export(sub)
    m = sub.add_parser("merge-shards", help="merge the shard-*/ runs of a task-parallel per-task run (torchrun "
                                            "--nproc-per-node N … train --per-task) into the run directory")
    m.add_argument("run_dir")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_merge)


_TOP = {"mode": "mode", "dataset": "dataset", "max_task_tokens": "max_task_tokens", "per_task": "per_task",
        "leave_out": "leave_out", "keep_original_colors": "keep_original_colors",
        "steps": "steps", "lr": "lr", "batch_size": "batch_size", "grad_accum": "grad_accum",
        "scheduler": "scheduler", "warmup_steps": "warmup_steps", "weight_decay": "weight_decay",
        "too_long": "too_long", "seed": "seed", "device": "device", "val": "val", "val_max_tokens": "val_max_tokens",
        "eval_steps": "eval_steps", "logging_steps": "logging_steps", "save_steps": "save_steps",
        "report_to": "report_to", "threads": "threads"}
_MODEL = {"base_model": "base_model", "adapter": "adapter", "full_finetune": "full_finetune", "init": "init",
          "lora_r": "lora_r", "lora_alpha": "lora_alpha", "lora_dropout": "lora_dropout",
          "target_modules": "target_modules", "trust_remote_code": "trust_remote_code"}
_ENC = {"max_seq_len": "max_seq_len", "format": "format", "loss_on": "loss_on", "chat_template": "chat_template"}
_AUG = {"colors": "colors", "p_bg": "p_bg", "shuffle": "shuffle"}


def config_from_args(args, base: dict | None = None):
    """A TrainConfig from a base config dict (file or run) with the given flags applied."""
    from ttft.engine.train_config import TrainConfig

    d = TrainConfig().to_json() if base is None else {**TrainConfig().to_json(), **base}
    for a, k in _TOP.items():
        if getattr(args, a, None) is not None:
            d[k] = getattr(args, a)
    for group, mapping in (("model", _MODEL), ("encoding", _ENC), ("augment", _AUG)):
        sub = dict(d[group])
        for a, k in mapping.items():
            if getattr(args, a, None) is not None:
                sub[k] = getattr(args, a)
        d[group] = sub
    if args.transforms is not None:
        d["augment"]["transforms"] = [t.strip() for t in args.transforms.split(",") if t.strip()]
    if args.compose is not None:
        d["augment"]["compose"] = [t.strip() for t in args.compose.split(",") if t.strip()]
    if args.tasks is not None:
        d["tasks"] = _parse_tasks(args.tasks)
    return TrainConfig.from_json(d)


def _parse_tasks(s: str) -> list[str]:
    from ttft.cli.main import CliError

    if s.startswith("@"):
        try:
            return [ln.strip() for ln in Path(s[1:]).read_text().splitlines() if ln.strip()]
        except OSError as e:
            raise CliError(f"--tasks {s}: cannot read the task list ({e.strerror})") from None
    return [t.strip() for t in s.split(",") if t.strip()]


def cmd_train(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.train import train
    from ttft.options import ConfigError

    resume = args.resume is not None
    run_dir = args.run_dir
    base = None
    try:
        if resume:
            if args.resume is not True:
                run_dir = args.resume
            if not run_dir:
                raise CliError("--resume needs the run directory (--resume RUN_DIR)")
            base = read_json(Path(run_dir) / "config.json")
            if base is None:
                raise CliError(f"--resume {run_dir}: no config.json there (not a run directory)")
        elif args.config:
            base = read_json(Path(args.config))
            if base is None:
                raise CliError(f"--config {args.config}: missing or not valid JSON")
        cfg = config_from_args(args, base)
        cfg.validate()
        if args.print_config:
            _print_json(cfg.to_json())
            return 0
        import os

        if cfg.per_task and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from ttft.engine.shards import shard_for_rank

            # task-parallel: each torchrun process trains its own share of the tasks into <run_dir>/shard-<rank>
            shard_cfg, shard_dir, rank, world = shard_for_rank(cfg, run_dir)
            result = train(shard_cfg, run_dir=shard_dir, resume=resume and Path(shard_dir).exists())
            print(f"shard {rank}/{world}: {result.status}; merge with: python -m ttft merge-shards {run_dir}",
                  file=sys.stderr)
        else:
            result = train(cfg, run_dir=run_dir, resume=resume)
    except (ConfigError, ModelError, ValueError) as e:
        raise CliError(str(e)) from None
    import os

    if int(os.environ.get("RANK", "0")) != 0 or os.environ.get("TTFT_SHARD", "0/1").split("/")[0] != "0":
        return 0  # under torchrun only rank 0 reports
    if args.json:
        out = result.to_json()
        _print_json({k: out[k] for k in ("run_dir", "status", "steps", "train_tokens", "train_tokens_per_second",
                                         "final_loss", "val_loss")} | {"counts": out["counts"]})
    else:
        print(f"{result.status}: {result.steps} steps, {result.train_tokens} tokens "
              f"({result.train_tokens_per_second:.0f}/s), final loss {result.final_loss}, val loss {result.val_loss}"
              f"\nrun: {result.run_dir}", file=sys.stderr)
    return 0


def register_export(sub) -> None:
    p = sub.add_parser("export-model", help="copy a full fine-tune's model/ folder (weights + tokenizer) to a "
                                            "folder, optionally in bfloat16 (how the embedded model is shipped)")
    p.add_argument("source", help="a model folder, e.g. runs/<id>/model")
    p.add_argument("--out", required=True, help="destination folder (e.g. ttft/assets/model)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="bfloat16")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ttft.cli.main import CliError

    src = Path(args.source)
    if not (src / "config.json").exists():
        raise CliError(f"{src}: not a model folder (no config.json)")
    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=getattr(torch, args.dtype))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    if (src / "tokenizer.json").exists() or (src / "tokenizer_config.json").exists():
        tok = AutoTokenizer.from_pretrained(str(src))
    else:  # a Trainer checkpoint of the embedded architecture: its tokenizer is the embedded one
        from ttft.core.tokenizer import VOCAB, build_embedded_tokenizer

        if model.config.vocab_size != len(VOCAB):
            raise CliError(f"{src}: no tokenizer files, and the vocabulary ({model.config.vocab_size}) is not the "
                           "embedded tokenizer's")
        tok = build_embedded_tokenizer()
    tok.save_pretrained(str(out))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"exported {sum(p.numel() for p in model.parameters()):,} parameters as {args.dtype} to {out} "
          f"({size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def cmd_merge(args) -> int:
    from ttft.cli.main import CliError, _print_json
    from ttft.engine.shards import merge_shards
    from ttft.engine.train_config import TrainConfig
    from ttft.options import ConfigError

    shard0 = read_json(Path(args.run_dir) / "shard-0" / "config.json")
    if shard0 is None:
        raise CliError(f"{args.run_dir}: no shard-0/config.json (not a sharded per-task run)")
    full = read_json(Path(args.run_dir) / "config.json") or {}
    try:
        cfg = TrainConfig.from_json({**shard0, **{k: v for k, v in full.items() if k != "shards"}})
        res = merge_shards(args.run_dir, cfg)
    except ConfigError as e:
        raise CliError(str(e)) from None
    if args.json:
        _print_json(res.to_json())
    else:
        print(f"{res.status}: merged into {res.run_dir}", file=sys.stderr)
    return 0
