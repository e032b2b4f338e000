"""The commands a config gives (``train …``, ``predict …``) and launching them as background jobs."""

from __future__ import annotations

import contextlib
import os
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from ttft.engine.predict import default_out_dir
from ttft.engine.predict_config import PredictConfig
from ttft.engine.sources import resolve_source
from ttft.runs.jobs import _enqueue, _new_run_path
from ttft.runs.process import device_kind
from ttft.runs.registry import Job, JobConfig, JobError
from ttft.runs.rundir import LAUNCH_CONFIG_FILE, read_json, write_json_atomic

_FLAGS = {"run": "--run", "base_model": "--base-model", "dataset": "--dataset", "max_task_tokens": "--max-task-tokens",
          "views": "--views", "colors": "--colors", "seed": "--seed", "temperature": "--temperature",
          "top_p": "--top-p", "batch_size": "--batch-size", "max_new_tokens": "--max-new-tokens",
          "max_seq_len": "--max-seq-len", "format": "--format", "device": "--device", "dtype": "--dtype",
          "threads": "--threads", "name": "--name", "out": "--out"}


_BOOLS = {"shuffle": "--shuffle", "sample": "--sample", "val_loss": "--val-loss"}


def predict_argv(cfg: PredictConfig) -> list[str]:
    """The ``predict …`` command line (after ``python -m ttft``) that runs ``cfg``: every option that differs from
    the default."""
    d, default = cfg.to_json(), PredictConfig().to_json()
    argv = ["predict"]
    for k, flag in _FLAGS.items():
        if d[k] is not None and d[k] != default[k]:
            argv += [flag, str(d[k])]
    for k, flag in _BOOLS.items():
        if d[k] != default[k]:
            argv.append(flag if d[k] else "--no-" + flag[2:])
    if d["tasks"]:
        argv += ["--tasks", ",".join(d["tasks"])]
    if d["transforms"] != default["transforms"]:
        argv += ["--transforms", ",".join(d["transforms"])]
    return argv + ["--json"]


def launch_prediction(cfg: PredictConfig) -> dict:
    """Start ``python -m ttft predict …`` for ``cfg`` in the background (its own session; it survives the app) and
    return ``{"out": folder, "argv": [...], "job": job id or None}``. The output folder is fixed now (``cfg.out`` or
    the default under the run / the runs folder). Uses :func:`ttft.jobs.launch` (queue, device slots) when it is
    there, else a detached ``subprocess.Popen``."""
    cfg.validate()
    source = resolve_source(cfg)
    spec = cfg.dataset or source.dataset or ""
    out = Path(cfg.out).expanduser() if cfg.out else default_out_dir(cfg, spec)
    cfg = replace(cfg, out=str(out.absolute()))
    argv = predict_argv(cfg)
    try:
        from ttft.runs import jobs, process
    except ImportError:
        jobs = None  # type: ignore[assignment]
    if jobs is not None and hasattr(jobs, "launch"):
        kind = process.device_kind(cfg.device) if hasattr(jobs, "device_kind") else None
        job = jobs.launch(argv, name=f"predict-{out.name}", kind=kind)
        return {"out": str(out), "argv": argv, "job": job.id}
    import subprocess
    import sys

    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open(out / "stderr.txt", "ab") as err:
        subprocess.Popen([sys.executable, "-m", "ttft", *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=err, env=env, start_new_session=True, close_fds=True)
    return {"out": str(out), "argv": argv, "job": None}


def train_parser():
    """The ``python -m ttft train`` argument parser (alone)."""
    import argparse

    from ttft.cli import train as cli_train

    p = argparse.ArgumentParser(prog="python -m ttft", exit_on_error=False)
    sub = p.add_subparsers(dest="command", required=True)
    cli_train.register(sub)
    return p


def parse_train_argv(argv: Sequence[str]):
    """(TrainConfig, run_dir or None, resume run dir or None) of a ``train …`` command line; validated."""
    import argparse
    import io

    from ttft.cli import train as cli_train
    from ttft.options import ConfigError

    argv = list(argv)
    if argv[:1] != ["train"]:
        argv = ["train", *argv]
    p = train_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = p.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as e:
        msg = str(e) if isinstance(e, argparse.ArgumentError) else err.getvalue().strip().splitlines()[-1:]
        raise JobError(f"bad train command: {msg if isinstance(msg, str) else ' '.join(msg)}") from None
    if args.command != "train":
        raise JobError(f"not a train command: {shlex.join(argv)}")
    base, resume_dir = None, None
    if args.resume is not None:
        resume_dir = args.resume if args.resume is not True else args.run_dir
        if not resume_dir:
            raise JobError("--resume needs the run directory")
        base = read_json(Path(resume_dir) / "config.json")
        if base is None:
            raise JobError(f"--resume {resume_dir}: no config.json there (not a run directory)")
    elif args.config:
        base = read_json(Path(args.config))
        if base is None:
            raise JobError(f"--config {args.config}: missing or not valid JSON")
    try:
        cfg = cli_train.config_from_args(args, base).validate()
    except (ConfigError, ValueError) as e:
        raise JobError(str(e)) from None
    return cfg, args.run_dir, resume_dir


def launch_train(tcfg, cfg: JobConfig | None = None, name: str | None = None) -> Job:
    """Queue a training run of a TrainConfig (the app's Launch button). The command is :func:`train_argv` when
    it states the config exactly, else ``train --config <run>/launch-config.json``."""
    cfg = (cfg or JobConfig.from_env()).validate()
    check_launchable(tcfg)
    path = _new_run_path(cfg.root, name or tcfg.mode)
    argv = train_argv(tcfg)
    if argv is None:
        write_json_atomic(path / LAUNCH_CONFIG_FILE, tcfg.to_json())
        argv = ["train", "--config", str(path / LAUNCH_CONFIG_FILE)]
    return _enqueue(path, [*argv, "--run-dir", str(path)], device_kind(tcfg.device), cfg, tcfg.to_json())


def check_launchable(tcfg) -> None:
    """Validate a TrainConfig and the cheap parts of its model source before it is queued (a job that can only
    fail should not wait in the queue). Raises ValueError naming the option."""
    from ttft.engine.models import DEFAULT_MODEL, ModelError, embedded_model_available

    tcfg.validate()
    m = tcfg.model
    if m.base_model == DEFAULT_MODEL:
        if m.init != "random" and not embedded_model_available():
            raise ModelError("base_model: the embedded model is not installed (ttft/assets/model has no weights); "
                             "choose a local model folder or a hub id, or init 'random' to train one from scratch")
    elif m.base_model.startswith((".", "/", "~")) or Path(m.base_model).expanduser().is_dir():
        if not (Path(m.base_model).expanduser() / "config.json").exists():
            raise ModelError(f"base_model: {m.base_model!r} is not a model folder (no config.json)")


def train_argv(tcfg) -> list[str] | None:
    """``train …`` flags that give exactly this TrainConfig (options at their default are left out; mode, dataset,
    steps and lr always shown), or None when an option has no flag (then use ``train --config FILE``)."""
    from ttft.engine.train_config import TrainConfig

    d, dflt = tcfg.to_json(), TrainConfig().to_json()
    argv = ["train"]

    def add(flag: str, v: Any, dv: Any, always: bool = False) -> None:
        if v == dv and not always:
            return
        if isinstance(v, bool):
            argv.append(flag if v else "--no-" + flag[2:])
        elif v is None:
            raise _NoFlag(flag)
        elif isinstance(v, (list, tuple)):
            argv.extend([flag, ",".join(map(str, v))])
        else:
            argv.extend([flag, repr(v) if isinstance(v, float) else str(v)])

    try:
        for k in ("mode", "dataset"):
            add("--" + k.replace("_", "-"), d[k], dflt[k], always=True)
        if d["tasks"] != dflt["tasks"]:
            if not d["tasks"]:
                raise _NoFlag("--tasks")
            add("--tasks", d["tasks"], None)
        for k in ("max_task_tokens", "per_task", "leave_out", "keep_original_colors"):
            add("--" + k.replace("_", "-"), d[k], dflt[k])
        for k in ("base_model", "adapter", "full_finetune", "init", "lora_r", "lora_alpha", "lora_dropout",
                  "target_modules"):
            add("--" + k.replace("_", "-"), d["model"][k], dflt["model"][k], always=k == "base_model")
        if d["model"]["trust_remote_code"] != dflt["model"]["trust_remote_code"]:
            if not d["model"]["trust_remote_code"]:
                raise _NoFlag("--trust-remote-code")
            argv.append("--trust-remote-code")
        for k in ("steps", "lr"):
            add("--" + k, d[k], dflt[k], always=True)
        for k in ("batch_size", "grad_accum", "scheduler", "warmup_steps", "weight_decay"):
            add("--" + k.replace("_", "-"), d[k], dflt[k])
        for k in ("max_seq_len", "format", "loss_on", "chat_template"):
            add("--" + k.replace("_", "-"), d["encoding"][k], dflt["encoding"][k])
        add("--too-long", d["too_long"], dflt["too_long"])
        for k in ("transforms", "colors", "p_bg", "shuffle", "compose"):
            v = d["augment"][k]
            if k == "compose" and v != dflt["augment"][k] and not v:
                raise _NoFlag("--compose")
            add("--" + k.replace("_", "-"), v, dflt["augment"][k])
        for k in ("seed", "device", "val", "val_max_tokens", "eval_steps", "logging_steps", "save_steps", "report_to",
                  "threads"):
            add("--" + k.replace("_", "-"), d[k], dflt[k])
        # options without a flag must be at their default
        flagless = [("save_total_limit", d, dflt), *((k, d["encoding"], dflt["encoding"]) for k in
                                                      ("input_marker", "output_marker")),
                    *((k, d["augment"], dflt["augment"]) for k in ("p_compose", "compose_targets", "seed"))]
        for k, a, b in flagless:
            if a[k] != b[k]:
                raise _NoFlag(k)
    except _NoFlag:
        return None
    # the command must give back exactly this config (new options without a flag end up here)
    try:
        back = parse_train_argv(argv)[0].to_json()
    except JobError:
        return None
    return argv if back == d else None


class _NoFlag(Exception):
    pass
