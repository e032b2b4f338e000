"""``python -m ttft train``: fine-tune or test-time fine-tune; one JSON object as the last line with --json."""

from __future__ import annotations

import sys
from pathlib import Path

from ttft.runs.rundir import read_json


def register(sub) -> None:
    from ttft.engine.commands import add_train_arguments

    p = sub.add_parser(
        "train",
        help="fine-tune (finetune) or test-time fine-tune (ttft) a model on ARC tasks",
        description="Fine-tune or test-time fine-tune a model on ARC tasks. Every option is also a "
        "key of the run's config.json (nested ones under model., encoding., augment.).",
    )
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)
    register_export(sub)
    m = sub.add_parser(
        "merge-shards",
        help="merge the shard-*/ runs of a task-parallel per-task run (torchrun "
        "--nproc-per-node N … train --per-task) into the run directory",
    )
    m.add_argument("run_dir")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_merge)


def config_from_args(args, base: dict | None = None):
    """A validated TrainConfig from a base config dict (file or run) with the given flags applied."""
    from ttft.engine.commands import config_from_args as from_args
    from ttft.engine.train_config import TrainConfig

    return from_args(TrainConfig, args, base)


def cmd_train(args) -> int:
    import os

    from ttft.cli.main import CliError, _print_json
    from ttft.engine.commands import read_config_file
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
            base = read_config_file(Path(run_dir) / "config.json", flag="--resume")
            base = {k: v for k, v in base.items() if k != "shards"}
        cfg = config_from_args(args, base)
        if args.print_config:
            _print_json(cfg.to_json())
            return 0
        if cfg.per_task and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from ttft.engine.shards import shard_for_rank

            # task-parallel: each torchrun process trains its own share of the tasks into <run_dir>/shard-<rank>
            shard_cfg, shard_dir, rank, world = shard_for_rank(cfg, run_dir)
            result = train(shard_cfg, run_dir=shard_dir, resume=resume and Path(shard_dir).exists())
            print(
                f"shard {rank}/{world}: {result.status}; merge with: python -m ttft merge-shards {run_dir}",
                file=sys.stderr,
            )
        else:
            result = train(cfg, run_dir=run_dir, resume=resume)
    except ConfigError as e:
        raise CliError(str(e)) from None
    if int(os.environ.get("RANK", "0")) != 0 or os.environ.get("TTFT_SHARD", "0/1").split("/")[0] != "0":
        return 0  # under torchrun only rank 0 reports
    if args.json:
        out = result.to_json()
        _print_json(
            {
                k: out[k]
                for k in (
                    "run_dir",
                    "status",
                    "steps",
                    "train_tokens",
                    "train_tokens_per_second",
                    "final_loss",
                    "val_loss",
                )
            }
            | {"counts": out["counts"]}
        )
    else:
        print(
            f"{result.status}: {result.steps} steps, {result.train_tokens} tokens "
            f"({result.train_tokens_per_second:.0f}/s), final loss {result.final_loss}, val loss {result.val_loss}"
            f"\nrun: {result.run_dir}",
            file=sys.stderr,
        )
    return 0


def register_export(sub) -> None:
    p = sub.add_parser(
        "export-model",
        help="copy a full fine-tune's model/ folder (weights + tokenizer) to a "
        "folder, optionally in bfloat16 (how the embedded model is shipped)",
    )
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
            raise CliError(
                f"{src}: no tokenizer files, and the vocabulary ({model.config.vocab_size}) is not the "
                "embedded tokenizer's"
            )
        tok = build_embedded_tokenizer()
    tok.save_pretrained(str(out))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(
        f"exported {sum(p.numel() for p in model.parameters()):,} parameters as {args.dtype} to {out} "
        f"({size / 1e6:.1f} MB)",
        file=sys.stderr,
    )
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
