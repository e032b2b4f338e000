"""Fine-tuning and test-time fine-tuning with ``transformers.Trainer`` (+ peft LoRA).

Modes
-----
``finetune``  every sample is a task of the dataset whose known pairs (train + known test outputs) are shuffled
              and one held out as the test; augmented on the fly.
``ttft``      test-time fine-tuning on the selected tasks' *train pairs only*: leave-one-out (n-1) tasks +
              augmentations; test outputs are never trained on. One adapter for all tasks, or ``per_task``.

The run directory (:mod:`ttft.runs`) is written by callbacks. SIGTERM saves a checkpoint and ends the run as
``stopped`` (exit 0); ``resume`` continues from the last checkpoint with optimizer and scheduler state.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttft import __version__
from ttft.core.data import Task
from ttft.core.selection import select_tasks
from ttft.engine.mix import mix_sources, select_mix
from ttft.engine.models import (
    attach_lora,
    check_hub_model,
    check_model_source,
    check_target_modules,
    choose_device,
    count_parameters,
    load_model,
    load_tokenizer_for,
    use_bf16,
)
from ttft.engine.samples import SampleStream, ValSet, make_collator, source_tasks
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError
from ttft.runs.lifecycle import RunLifecycle
from ttft.runs.metrics import SUPERSEDED_FILE, drop_steps_after
from ttft.runs.rundir import (
    RunDir,
    append_jsonl,
    new_run_id,
    read_json,
    read_jsonl,
    runs_root,
    safe_name,
    write_json_atomic,
)


def read_json_dict(path: Path) -> dict:
    d = read_json(path)
    return d if isinstance(d, dict) else {}


# --------------------------------------------------------------------------- stop handling
# The run's lifecycle (ttft.runs.lifecycle.RunLifecycle) holds the stop flag: SIGTERM/SIGINT set it, and the
# callback saves a checkpoint at the next step end and stops.


def _cuda_in_use() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _make_callback(
    run: RunDir | None,
    stop: RunLifecycle,
    task_label: str | None,
    step_offset: int,
    total_steps: int,
    stream: SampleStream | None,
):
    from transformers import TrainerCallback

    class RunCallback(TrainerCallback):
        def __init__(self):
            self.t0 = time.time()
            self.last_t = self.t0
            self.last_tokens = 0

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.last_t = time.time()
            self.last_tokens = state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kw):
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            if run is None or not state.is_world_process_zero:
                return
            logs = dict(logs or {})
            now = time.time()
            tokens = state.num_input_tokens_seen
            rec: dict[str, Any] = {"step": step_offset + state.global_step, "time": now}
            if task_label:
                rec["task"] = task_label
                rec["task_step"] = state.global_step
            for k in ("loss", "learning_rate", "grad_norm", "eval_loss", "epoch"):
                if k in logs:
                    rec["lr" if k == "learning_rate" else k] = logs[k]
            if "loss" in logs and _cuda_in_use():
                import torch

                rec["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            if "loss" in logs:
                dt = now - self.last_t
                rec["tokens"] = tokens
                rec["tokens_per_second"] = (tokens - self.last_tokens) / dt if dt > 0 else None
                self.last_t, self.last_tokens = now, tokens
            if "train_loss" in logs:  # the end-of-training summary, not a step
                return
            rec["elapsed"] = now - self.t0
            from ttft.runs.rundir import append_jsonl

            append_jsonl(run.metrics_file, rec)
            line = (
                f"step {rec['step']}/{total_steps}"
                + (f" [{task_label}]" if task_label else "")
                + "".join(
                    f" {k} {rec[k]:.4g}"
                    for k in ("loss", "eval_loss", "lr", "tokens_per_second")
                    if isinstance(rec.get(k), (int, float))
                )
            )
            run.log(line)
            if not sys.stderr.isatty():
                print(line, file=sys.stderr, flush=True)
            run.update_status(
                step=step_offset + state.global_step,
                max_steps=total_steps,
                **({"task": task_label} if task_label else {}),
                **({"counts": dict(stream.counts)} if stream is not None else {}),
            )

    return RunCallback()


# --------------------------------------------------------------------------- the run


def _git_commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=Path(__file__).parent,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def manifest(cfg: TrainConfig, ds_version: str, device: str, n_params: tuple[int, int] | None = None) -> dict:
    import peft
    import torch
    import transformers

    return {
        "ttft_version": __version__,
        "ttft_commit": _git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "dataset": cfg.dataset,
        "dataset_version": ds_version,
        "seed": cfg.seed,
        "device": device,
        "bf16": use_bf16(device),
        "host": platform.node(),
        "platform": platform.platform(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        **({"parameters": n_params[0], "trainable_parameters": n_params[1]} if n_params else {}),
        "started": time.time(),
    }


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def prepare_run_dir(cfg: TrainConfig, run_dir: str | None, resume: bool) -> RunDir:
    """Create or check the run directory; write config.json. Refuses a folder holding a different run."""
    if run_dir is None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("run_dir: pass --run-dir when launching with torchrun (all ranks must agree)")
        run = RunDir(runs_root() / new_run_id(cfg.mode))
    else:
        run = RunDir(Path(run_dir).expanduser())
        if run.path.exists() and not run.path.is_dir():
            raise ConfigError(f"run_dir: {run.path} is a file, not a folder; give --run-dir a folder (new or a run's)")
        if any(p.exists() and not p.is_dir() for p in run.path.parents):
            raise ConfigError(f"run_dir: {run.path} is inside a file; give --run-dir a folder")
    if _rank() != 0:
        return run  # rank 0 checks and writes; the other ranks only train
    if run.exists():
        old = run.config()
        try:  # a run made by an older ttft lacks newer options: compare with their defaults filled in
            old = TrainConfig.from_json({k: v for k, v in old.items() if k != "shards"}).to_json()
        except (ValueError, TypeError):
            pass
        if old != cfg.to_json():
            diff = sorted(k for k in set(old) | set(cfg.to_json()) if old.get(k) != cfg.to_json().get(k))
            raise ConfigError(
                f"run_dir: {run.path} already holds a different run (options differ: "
                f"{', '.join(diff)}); choose another --run-dir or --resume it"
            )
        if not resume:
            raise ConfigError(f"run_dir: {run.path} already holds this run; pass --resume to continue it")
    elif resume:
        raise ConfigError(f"run_dir: nothing to resume in {run.path}")
    if _rank() == 0:
        run.path.mkdir(parents=True, exist_ok=True)
        if not run.exists():
            write_json_atomic(run.config_file, cfg.to_json())
    return run


@dataclass
class TrainResult:
    """What a run reached. ``val_loss`` / ``val_loss_before``: the mean over tasks (per-task runs) of the val loss
    after / before training; ``per_task``: {task: {steps, final_loss, val_loss_before, val_loss, seconds}}."""

    run_dir: str
    status: str
    steps: int
    train_tokens: int
    train_tokens_per_second: float
    final_loss: float | None
    val_loss: float | None
    counts: dict = field(default_factory=dict)
    val_loss_before: float | None = None
    per_task: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _training_args(cfg: TrainConfig, out_dir: Path, device: str, has_eval: bool):
    from transformers import TrainingArguments

    world = int(os.environ.get("WORLD_SIZE", "1"))
    return TrainingArguments(
        output_dir=str(out_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=1,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_steps,
        weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if has_eval and cfg.eval_steps else "no",
        eval_steps=cfg.eval_steps or None,
        report_to=cfg.report_to,
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=device == "cpu",
        bf16=use_bf16(device),
        remove_unused_columns=False,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=not sys.stderr.isatty(),
        optim="adamw_torch",
        ddp_backend=("gloo" if device == "cpu" else None) if world > 1 else None,
        ddp_find_unused_parameters=False if world > 1 else None,
    )


def _evaluate(trainer, val: ValSet | None) -> float | None:
    if val is None or not len(val):
        return None
    return float(trainer.evaluate(val)["eval_loss"])


def task_seed(seed: int, task_id: str) -> int:
    """The seed of one task's adapter in a per-task run: from the run seed and the task id only, so an adapter is
    the same whatever tasks are trained before or beside it (order, shards, --gpus N)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{task_id}".encode()).digest()[:4], "little")


def training_sources(cfg: TrainConfig, tasks: list[Task], tokenizer: Any) -> list[tuple[list[Task], int]]:
    """Per group (one per task in per-task runs, else one), the source tasks samples are drawn from and how many
    tasks gave none. Raises ConfigError when no sample of any task fits ``encoding.max_seq_len``."""
    groups = [[t] for t in tasks] if cfg.per_task else [tasks]
    out = []
    for group in groups:
        per = [source_tasks(t, cfg, tokenizer) for t in group]
        out.append(([s for ss in per for s in ss], sum(not ss for ss in per)))
    if not any(srcs for srcs, _ in out):
        raise ConfigError(
            f"encoding.max_seq_len: no training sample of the {len(tasks)} selected task(s) fits in "
            f"{cfg.encoding.max_seq_len} tokens (a sample needs at least two pairs); raise max_seq_len "
            f"or choose smaller tasks, got {cfg.encoding.max_seq_len}"
        )
    return out


def train(cfg: TrainConfig, run_dir: str | None = None, resume: bool = False, log=print) -> TrainResult:
    """Run (or resume) a training run end to end. Bad options raise ConfigError/ModelError before any work."""
    cfg.validate()
    check_hub_model(cfg.model)  # a hub id that cannot be had fails in seconds, before torch is even imported
    device = choose_device(cfg.device)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    parts = select_mix(cfg)  # the dataset, or each dataset of a mix, with its tasks
    ds, tasks = parts[0].dataset, [t for p in parts for t in p.tasks]
    check_model_source(cfg.model)
    check_target_modules(cfg.model)
    val_tasks: list[Task] = []
    if cfg.val != "none":
        if cfg.val == "auto":
            if cfg.mode == "ttft":
                val_tasks = [t for t in tasks if t.test_outputs_known]
            elif cfg.dataset.endswith("/training"):
                _, val_tasks = select_tasks(cfg.dataset.replace("/training", "/evaluation"), (), cfg.val_max_tokens)
        else:
            _, val_tasks = select_tasks(cfg.val, (), cfg.val_max_tokens)
        if cfg.val_max_tokens is not None:
            val_tasks = [t for t in val_tasks if t.stats().tokens <= cfg.val_max_tokens]
    tokenizer = load_tokenizer_for(cfg.model)
    mix = mix_sources(cfg, parts, tokenizer) if len(parts) > 1 else None
    # refuses a run in which no sample fits, before any work
    sources = [([s for m in mix for s in m], 0)] if mix else training_sources(cfg, tasks, tokenizer)
    run = prepare_run_dir(cfg, run_dir, resume)
    is_main = _rank() == 0
    # rank 0 writes the run's status; every rank gets the stop flag (a failure is recorded as failed and re-raised)
    life = RunLifecycle(run, write=is_main, stop_message="saving a checkpoint and stopping")
    with life.start(
        step=0, max_steps=cfg.steps * (len(tasks) if cfg.per_task else 1), mode=cfg.mode, n_tasks=len(tasks)
    ):
        life.log(
            f"{'resuming' if resume else 'starting'} {cfg.mode} on {cfg.dataset} ({len(tasks)} tasks), device {device}"
        )
        result = _train_inner(
            cfg, run, ds, tasks, val_tasks, device, resume, life, tokenizer, sources, mix, [p.to_json() for p in parts]
        )
        if is_main:
            write_json_atomic(run.path / "result.json", result.to_json())
        life.finish(result.status, step=result.steps, val_loss=result.val_loss, final_loss=result.final_loss)
        life.log(f"{result.status} at step {result.steps}")
        return result


def _train_inner(
    cfg, run, ds, tasks, val_tasks, device, resume, stop, tokenizer, sources_by_group, mix, datasets
) -> TrainResult:
    import torch
    from transformers import Trainer

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    torch.manual_seed(cfg.seed)
    base = load_model(cfg.model, device="cpu" if device == "cpu" else device, dtype=torch.float32)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    n_samples = cfg.steps * cfg.batch_size * cfg.grad_accum * world

    if is_main := _rank() == 0:
        total, trainable = count_parameters(base)
        write_json_atomic(
            run.manifest_file,
            {**manifest(cfg, ds.version, device, (total, None)), "n_tasks": len(tasks), "datasets": datasets},
        )

    groups = [[t] for t in tasks] if cfg.per_task else [tasks]
    t_start = time.time()
    tokens_total, last_loss, val_losses, steps_done, status = 0, None, [], 0, "finished"
    before_losses: list[float] = []
    per_task: dict[str, dict] = (read_json_dict(run.path / "result.json").get("per_task") or {}) if resume else {}
    counts_total: dict[str, int] = {}
    for gi, group in enumerate(groups):
        label = group[0].id if cfg.per_task else None
        gcfg = cfg.replace(seed=task_seed(cfg.seed, label)) if label else cfg  # per-task: independent of the others
        t_group = time.time()
        sub = safe_name(label) if label else None
        final_dir = (
            (run.adapters_dir / sub) if sub else (run.path / ("model" if cfg.model.full_finetune else "adapter"))
        )
        if cfg.per_task and (final_dir / "adapter_config.json").exists():
            steps_done += cfg.steps
            done = per_task.get(label) or {}
            for key, into in (("val_loss", val_losses), ("val_loss_before", before_losses)):
                if done.get(key) is not None:
                    into.append(done[key])
            continue  # finished before a resume
        sources, dropped_tasks = sources_by_group[gi]
        counts_total["tasks_without_samples"] = counts_total.get("tasks_without_samples", 0) + dropped_tasks
        if not sources:
            if is_main:
                run.log(
                    f"{label or 'run'}: no training sample fits (needs >= 2 train pairs within max_seq_len); skipped"
                )
            continue
        torch.manual_seed(gcfg.seed)  # the LoRA initialisation: from this group's seed only
        if cfg.model.full_finetune:
            model = base
        else:
            model = attach_lora(base, cfg.model)
        if is_main and gi == 0:
            total, trainable = count_parameters(model)
            m = RunDir(run.path).manifest()
            m.update(parameters=total, trainable_parameters=trainable)
            write_json_atomic(run.manifest_file, m)
        stream = SampleStream(sources, cfg.mode, n_samples, gcfg, tokenizer, mix=mix)
        val = (
            ValSet(
                [t for t in val_tasks if t.id in {g.id for g in group}] if cfg.per_task else val_tasks, cfg, tokenizer
            )
            if val_tasks
            else None
        )
        out_dir = run.checkpoints_dir / sub if sub else run.checkpoints_dir
        args = _training_args(gcfg, out_dir, device, has_eval=val is not None and len(val) > 0)
        cb = _make_callback(run, stop, label, steps_done, cfg.steps * len(groups), stream)
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=stream,
            eval_dataset=val if val and len(val) else None,
            data_collator=make_collator(pad_id),
            callbacks=[cb],
            processing_class=tokenizer,
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # our callback writes metrics.jsonl, log.txt and a stderr line
        ckpt = (
            _resume_point(run, sub, label, steps_done, stop)
            if resume and is_main
            else (run.intact_checkpoint(sub)[0] if resume else None)
        )
        before = None
        if ckpt is None:  # the val loss before training (a resumed group had it recorded when it started)
            before = _evaluate(trainer, val)
            if before is not None and is_main:
                append_jsonl(
                    run.metrics_file,
                    {
                        "step": steps_done,
                        "time": time.time(),
                        "eval_loss": before,
                        "val_loss_before": before,
                        **({"task": label} if label else {}),
                    },
                )
        else:  # resumed within the group: its before-loss was logged when it started
            before = _logged_before(run, label)
        if before is not None:
            before_losses.append(before)
        trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
        tokens_total += int(trainer.state.num_input_tokens_seen)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        last_loss = losses[-1] if losses else last_loss
        for k, v in stream.counts.items():
            counts_total[k] = counts_total.get(k, 0) + v
        if stop.requested:
            steps_done += trainer.state.global_step
            status = "stopped"
            break
        steps_done += trainer.state.global_step
        vl = _evaluate(trainer, val)
        if vl is not None:
            val_losses.append(vl)
            if is_main:
                append_jsonl(
                    run.metrics_file,
                    {
                        "step": steps_done,
                        "time": time.time(),
                        "eval_loss": vl,
                        "final": True,
                        **({"task": label} if label else {}),
                    },
                )
        if label:
            group_losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
            per_task[label] = {
                "steps": trainer.state.global_step,
                "final_loss": group_losses[-1] if group_losses else None,
                "val_loss_before": before,
                "val_loss": vl,
                "seconds": round(time.time() - t_group, 3),
            }
            if is_main:  # so a resume knows what finished tasks reached
                write_json_atomic(run.path / "result.json", {"per_task": per_task, "partial": True})
        if is_main:
            if cfg.model.full_finetune:
                trainer.save_model(str(final_dir))
                tokenizer.save_pretrained(str(final_dir))
            else:
                model.save_pretrained(str(final_dir))
        if not cfg.model.full_finetune and cfg.per_task:
            base = model.unload()  # drop this task's LoRA: the next task starts from the same base
        del trainer
    elapsed = time.time() - t_start
    return TrainResult(
        run_dir=str(run.path),
        status=status,
        steps=steps_done,
        train_tokens=tokens_total,
        train_tokens_per_second=tokens_total / elapsed if elapsed > 0 else 0.0,
        final_loss=last_loss,
        val_loss=float(np.mean(val_losses)) if val_losses else None,
        counts=counts_total,
        val_loss_before=float(np.mean(before_losses)) if before_losses else None,
        per_task=per_task,
    )


def _logged_before(run: RunDir, label: str | None) -> float | None:
    """The val loss before training that a group logged when it started (the last such line of its task)."""
    for rec in reversed(read_jsonl(run.metrics_file)):
        if rec.get("val_loss_before") is not None and rec.get("task") == label:
            return float(rec["val_loss_before"])
    return None


def _resume_point(run: RunDir, sub: str | None, label: str | None, steps_done: int, life: RunLifecycle) -> Path | None:
    """The checkpoint a resumed group continues from: the newest intact one (a truncated or unreadable newer one
    is skipped, with the reason). The metrics lines past it are taken out of metrics.jsonl (they are logged again),
    so the file never repeats a step. What was chosen is logged, printed and recorded in status.json (``resume``)."""
    ckpt, skipped = run.intact_checkpoint(sub)
    what = f" of task {label}" if label else ""
    at = int(ckpt.name.split("-")[-1]) if ckpt is not None else 0
    notes = [f"skipped {cp.name}{what}: {why}" for cp, why in skipped]
    dropped = drop_steps_after(run.metrics_file, steps_done + at)
    if ckpt is not None:
        notes.append(f"resuming{what} from {ckpt.name}")
    elif skipped or dropped:
        notes.append(f"no intact checkpoint{what} is left: training{what or ' the run'} again from its first step")
    if dropped:
        notes.append(
            f"{dropped} metrics line(s) after step {steps_done + at} moved to {SUPERSEDED_FILE} (those steps "
            "are logged again)"
        )
    for n in notes:
        life.log(n)
        print(n, file=sys.stderr, flush=True)
    if notes:
        life.update(
            resume={
                "from": ckpt.name if ckpt is not None else None,
                "task": label,
                "skipped": [f"{cp.name}: {why}" for cp, why in skipped],
                "superseded_lines": dropped,
            }
        )
    return ckpt


# --------------------------------------------------------------------------- task-parallel shards (torchrun)

_DIST_ENV = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "ROLE_NAME",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCH_NCCL_ASYNC_ERROR_HANDLING",
    "TORCHELASTIC_ERROR_FILE",
)
