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

import dataclasses
import math
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from ttft import __version__
from ttft.augment import (IDENTITY_COLORS, AugmentOptions, AugmentSkipped, leave_one_out, leave_two_out, random_spec,
                          try_apply_task)
from ttft.data import Task, load_dataset
from ttft.encoding import IGNORE_INDEX, EncodingConfig, tokenize_task
from ttft.models import (DEFAULT_MODEL, ModelConfig, ModelError, attach_lora, check_model_source,
                         check_target_modules, choose_device,
                         count_parameters, load_model, load_tokenizer_for, use_bf16)
from ttft.runs import RunDir, new_run_id, runs_root, safe_name, write_json_atomic

MODES = ("finetune", "ttft")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")


class ConfigError(ValueError):
    """An option that cannot be used; the message names it and its value."""


# --------------------------------------------------------------------------- config


@dataclass
class TrainConfig:
    """Every option of a training run (saved as the run's config.json)."""

    mode: str = "ttft"
    dataset: str = "arc-agi-1/evaluation"
    tasks: tuple[str, ...] = ()
    max_task_tokens: int | None = None
    per_task: bool = False
    leave_out: int = 1
    keep_original_colors: float = 0.0
    steps: int = 100
    lr: float = 1e-4
    batch_size: int = 1
    grad_accum: int = 1
    scheduler: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    too_long: str = "trim"
    seed: int = 0
    device: str = "auto"
    val: str = "auto"
    val_max_tokens: int | None = None
    eval_steps: int = 0
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int = 2
    report_to: str = "none"
    threads: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    encoding: EncodingConfig = field(default_factory=lambda: EncodingConfig(max_seq_len=2048))
    augment: AugmentOptions = field(default_factory=AugmentOptions)

    HELP: ClassVar[dict[str, str]] = {
        "mode": "finetune: train on a dataset's tasks (all known pairs, one held out per sample); ttft: test-time "
                "fine-tune on the selected tasks' train pairs only (n-1 tasks + augmentations)",
        "dataset": "bundled name (arc-agi-1/training, ...) or a path",
        "tasks": "task ids to use (empty: all tasks of the dataset)",
        "max_task_tokens": "use only tasks whose token estimate (1 per cell + 1 per row) is at most this",
        "per_task": "ttft mode: one adapter per task (trained from the same base) instead of one for all",
        "leave_out": "ttft mode: build tasks by leaving out 1 (n-1) or 2 (n-2) train pairs as the test",
        "keep_original_colors": "probability that a sample keeps the original colours (the seed experiment's "
                                "'preserve original colours' variant)",
        "steps": "optimizer steps (per task with per_task)",
        "lr": "peak learning rate",
        "batch_size": "samples per device per step (before gradient accumulation)",
        "grad_accum": "gradient accumulation steps",
        "scheduler": "learning-rate schedule: " + ", ".join(SCHEDULERS),
        "warmup_steps": "linear warm-up steps",
        "weight_decay": "AdamW weight decay",
        "too_long": "a sample longer than encoding.max_seq_len: 'trim' drops train pairs until it fits, 'drop' "
                    "draws another sample (both are counted)",
        "seed": "seed of the sample stream, augmentations and initialisation",
        "device": "auto, cpu, cuda, cuda:N or mps",
        "val": "validation set for the val loss (mean loss on test-output tokens): 'auto' (the selected tasks in "
               "ttft mode; the matching evaluation split in finetune mode), 'none', or a dataset name/path",
        "val_max_tokens": "use only validation tasks whose token estimate is at most this",
        "eval_steps": "compute the val loss every N steps (0: only at the end)",
        "logging_steps": "write a metrics line every N steps",
        "save_steps": "save a checkpoint every N steps (and always on stop)",
        "save_total_limit": "keep at most this many checkpoints",
        "report_to": "extra loggers for Trainer: none, tensorboard, wandb, ...",
        "threads": "CPU threads for torch (0: torch's default)",
    }

    def validate(self) -> "TrainConfig":
        def bad(name: str, msg: str):
            raise ConfigError(f"{name}: {msg}, got {getattr(self, name)!r}")

        if self.mode not in MODES:
            bad("mode", f"must be one of {', '.join(MODES)}")
        for name in ("steps", "batch_size", "grad_accum", "logging_steps", "save_steps", "save_total_limit"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                bad(name, "must be a positive integer")
        for name in ("warmup_steps", "eval_steps", "threads"):
            v = getattr(self, name)
            if type(v) is not int or v < 0:
                bad(name, "must be a non-negative integer")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) \
                or self.lr <= 0:
            bad("lr", "must be a positive number")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if self.scheduler not in SCHEDULERS:
            bad("scheduler", f"must be one of {', '.join(SCHEDULERS)}")
        if self.too_long not in ("trim", "drop"):
            bad("too_long", "must be 'trim' or 'drop'")
        if self.per_task and self.mode != "ttft":
            bad("per_task", "is only for mode 'ttft'")
        if self.leave_out not in (1, 2):
            bad("leave_out", "must be 1 (n-1) or 2 (n-2)")
        if isinstance(self.keep_original_colors, bool) or not isinstance(self.keep_original_colors, (int, float)) \
                or not 0 <= self.keep_original_colors <= 1:
            bad("keep_original_colors", "must be a probability between 0 and 1")
        for name in ("max_task_tokens", "val_max_tokens"):
            v = getattr(self, name)
            if v is not None and (type(v) is not int or v < 1):
                bad(name, "must be a positive integer")
        if type(self.seed) is not int:
            bad("seed", "must be an integer")
        try:
            choose_device(self.device)
        except ModelError as e:
            raise ConfigError(f"device: {e}") from None
        self.model.validate()
        try:
            self.encoding.validate()
            self.augment.validate()
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return self

    def to_json(self) -> dict:
        d = {}
        for f in fields(self):
            v = getattr(self, f.name)
            d[f.name] = v.to_json() if hasattr(v, "to_json") else (list(v) if isinstance(v, tuple) else v)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        extra = set(d) - names
        if extra:
            raise ConfigError(f"unknown training option(s): {', '.join(sorted(extra))}")
        kw = dict(d)
        if "model" in kw:
            kw["model"] = ModelConfig.from_json(kw["model"])
        if "encoding" in kw:
            kw["encoding"] = EncodingConfig.from_json(kw["encoding"])
        if "augment" in kw:
            kw["augment"] = AugmentOptions.from_json(kw["augment"])
        if "tasks" in kw:
            kw["tasks"] = tuple(kw["tasks"])
        return cls(**kw)


# --------------------------------------------------------------------------- task selection


def select_tasks(dataset_spec: str, ids: tuple[str, ...] | list[str] = (), max_tokens: int | None = None):
    """(dataset, selected tasks). Unknown ids raise ConfigError naming them."""
    try:
        ds = load_dataset(dataset_spec)
    except (ValueError, OSError) as e:
        raise ConfigError(f"dataset: {e}") from None
    if ids:
        unknown = [t for t in ids if t not in ds.tasks]
        if unknown:
            raise ConfigError(f"tasks: unknown task id(s) {', '.join(unknown[:10])} in dataset {dataset_spec!r}")
        tasks = [ds.tasks[t] for t in ids]
    else:
        tasks = list(ds)
    if max_tokens is not None:
        tasks = [t for t in tasks if t.stats().tokens <= max_tokens]
    if not tasks:
        raise ConfigError(f"tasks: no task of {dataset_spec!r} is selected (max_task_tokens={max_tokens})")
    return ds, tasks


def known_pairs_task(task: Task) -> Task:
    """The task with every pair whose output is known as a train pair (finetune mode's source)."""
    pairs = task.train + tuple(p for p in task.test if p.output is not None)
    return Task(task.id, pairs, (), source=task.source)


# --------------------------------------------------------------------------- datasets


class SampleStream:
    """A map-style torch dataset of augmented, tokenised samples; sample ``i`` depends only on (seed, i).

    Deterministic per index, so resuming (which skips the batches already seen) gives the same stream."""

    def __init__(self, sources: list[Task], mode: str, n_samples: int, cfg: TrainConfig, tokenizer: Any):
        self.sources = sources
        self.mode = mode
        self.n = n_samples
        self.cfg = cfg
        self.tokenizer = None if _is_embedded_tok(tokenizer) else tokenizer
        self.counts = {"samples": 0, "trimmed": 0, "dropped": 0, "augment_skipped": 0}

    def __len__(self) -> int:
        return self.n

    def _base_task(self, rng: np.random.Generator, i: int) -> Task:
        n = len(self.sources)
        epoch, k = divmod(i, n)
        perm = np.random.default_rng([self.cfg.seed, 7, epoch]).permutation(n)
        src = self.sources[int(perm[k])]
        if self.mode == "finetune":
            order = rng.permutation(len(src.train))
            pairs = tuple(src.train[int(j)] for j in order)
            return Task(src.id, pairs[:-1], pairs[-1:], source=src.source)
        return src  # an n-1 task

    def __getitem__(self, i: int) -> dict:
        for attempt in range(20):
            rng = np.random.default_rng([self.cfg.seed, int(i), attempt])
            task = self._base_task(rng, int(i) + attempt * 7919)
            spec = random_spec(rng, self.cfg.augment, task)
            if self.cfg.keep_original_colors and rng.random() < self.cfg.keep_original_colors:
                spec = dataclasses.replace(spec, colors=IDENTITY_COLORS)
            res = try_apply_task(task, spec)
            if res.task is None:
                self.counts["augment_skipped"] += 1
                continue
            task = res.task
            k = int(rng.integers(len(task.test)))  # n-2 tasks have two test pairs: train on one of them
            tt = tokenize_task(task, self.cfg.encoding, self.tokenizer, test_index=k)
            if not tt.fits and self.cfg.too_long == "trim":
                train = list(task.train)
                while not tt.fits and len(train) > 1:
                    train.pop(0)
                    tt = tokenize_task(Task(task.id, tuple(train), task.test), self.cfg.encoding, self.tokenizer,
                                       test_index=k)
                if tt.fits:
                    self.counts["trimmed"] += 1
            if not tt.fits:
                self.counts["dropped"] += 1
                continue
            self.counts["samples"] += 1
            return tt.to_features()
        raise RuntimeError(f"sample {i}: no augmented task fits max_seq_len={self.cfg.encoding.max_seq_len} after "
                           "20 tries; raise max_seq_len or select smaller tasks (max_task_tokens)")


def _is_embedded_tok(tok: Any) -> bool:
    from ttft.tokenizer import is_embedded

    return tok is None or is_embedded(tok)


def fits_at_all(task: Task, mode: str, cfg: TrainConfig, tokenizer: Any) -> bool:
    """Whether the smallest sample of a source task (one example + the test) fits max_seq_len."""
    tok = None if _is_embedded_tok(tokenizer) else tokenizer
    t = task if mode == "ttft" else Task(task.id, task.train[:-1], task.train[-1:])
    small = Task(t.id, t.train[:1], t.test[:1])
    return tokenize_task(small, cfg.encoding, tok).fits


class ValSet:
    """Test-output tokens of tasks with known outputs (no augmentation, loss on the test output only)."""

    def __init__(self, tasks: list[Task], cfg: TrainConfig, tokenizer: Any):
        enc = EncodingConfig(**{**cfg.encoding.to_json(), "loss_on": "test"})
        tok = None if _is_embedded_tok(tokenizer) else tokenizer
        self.items, self.task_ids, self.skipped = [], [], 0
        for t in tasks:
            for k, p in enumerate(t.test):
                if p.output is None:
                    continue
                tt = tokenize_task(t, enc, tok, test_index=k)
                if tt.fits:
                    self.items.append(tt.to_features())
                    self.task_ids.append(t.id)
                else:
                    self.skipped += 1

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def make_collator(pad_id: int):
    import torch

    def collate(batch: list[dict]) -> dict:
        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for j, b in enumerate(batch):
            L = len(b["input_ids"])
            ids[j, :L] = torch.tensor(b["input_ids"])
            labels[j, :L] = torch.tensor(b["labels"])
            mask[j, :L] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return collate


# --------------------------------------------------------------------------- stop handling


class StopFlag:
    """Set by SIGTERM/SIGINT; the callback saves a checkpoint at the next step end and stops."""

    def __init__(self):
        self.requested = False
        self.signal_name = ""

    def install(self, run: RunDir | None) -> None:
        def handler(signum, frame):
            self.requested = True
            self.signal_name = signal.Signals(signum).name
            if run is not None:
                try:
                    run.update_status(status="stopping")
                    run.log(f"{self.signal_name} received: saving a checkpoint and stopping")
                except OSError:
                    pass

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _cuda_in_use() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_initialized()


def _make_callback(run: RunDir | None, stop: StopFlag, task_label: str | None, step_offset: int, total_steps: int,
                   stream: SampleStream | None):
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
            from ttft.runs import append_jsonl

            append_jsonl(run.metrics_file, rec)
            line = (f"step {rec['step']}/{total_steps}" + (f" [{task_label}]" if task_label else "")
                    + "".join(f" {k} {rec[k]:.4g}" for k in ("loss", "eval_loss", "lr", "tokens_per_second")
                              if isinstance(rec.get(k), (int, float))))
            run.log(line)
            if not sys.stderr.isatty():
                print(line, file=sys.stderr, flush=True)
            run.update_status(step=step_offset + state.global_step, max_steps=total_steps,
                              **({"task": task_label} if task_label else {}),
                              **({"counts": dict(stream.counts)} if stream is not None else {}))

    return RunCallback()


# --------------------------------------------------------------------------- the run


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def manifest(cfg: TrainConfig, ds_version: str, device: str, n_params: tuple[int, int] | None = None) -> dict:
    import peft
    import torch
    import transformers

    return {
        "ttft_version": __version__, "ttft_commit": _git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "dataset": cfg.dataset, "dataset_version": ds_version, "seed": cfg.seed, "device": device,
        "bf16": use_bf16(device), "host": platform.node(), "platform": platform.platform(),
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
            raise ConfigError(f"run_dir: {run.path} already holds a different run (options differ: "
                              f"{', '.join(diff)}); choose another --run-dir or --resume it")
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
    run_dir: str
    status: str
    steps: int
    train_tokens: int
    train_tokens_per_second: float
    final_loss: float | None
    val_loss: float | None
    counts: dict = field(default_factory=dict)

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


def train(cfg: TrainConfig, run_dir: str | None = None, resume: bool = False, log=print) -> TrainResult:
    """Run (or resume) a training run end to end. Bad options raise ConfigError/ModelError before any work."""
    cfg.validate()
    device = choose_device(cfg.device)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    ds, tasks = select_tasks(cfg.dataset, cfg.tasks, cfg.max_task_tokens)
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
    run = prepare_run_dir(cfg, run_dir, resume)
    stop = StopFlag()
    stop.install(run if _rank() == 0 else None)
    is_main = _rank() == 0
    try:
        if is_main:
            run.update_status(status="running", pid=os.getpid(), pid_start=_own_start(), step=0,
                              max_steps=cfg.steps * (len(tasks) if cfg.per_task else 1), started=time.time(),
                              mode=cfg.mode, n_tasks=len(tasks), error=None)
            run.log(f"{'resuming' if resume else 'starting'} {cfg.mode} on {cfg.dataset} ({len(tasks)} tasks), "
                    f"device {device}")
        result = _train_inner(cfg, run, ds, tasks, val_tasks, device, resume, stop, log)
        if is_main:
            write_json_atomic(run.path / "result.json", result.to_json())
            run.update_status(status=result.status, step=result.steps, ended=time.time(),
                              val_loss=result.val_loss, final_loss=result.final_loss)
            run.log(f"{result.status} at step {result.steps}")
        return result
    except BaseException as e:
        if is_main:
            tb = traceback.format_exc()
            run.log(tb)
            run.update_status(status="failed", error=f"{type(e).__name__}: {e}", traceback=tb[-4000:],
                              ended=time.time())
        raise


def _own_start() -> float | None:
    from ttft.runs import process_start_time

    return process_start_time(os.getpid())


def _train_inner(cfg, run, ds, tasks, val_tasks, device, resume, stop, log) -> TrainResult:
    import torch
    from transformers import Trainer

    tokenizer = load_tokenizer_for(cfg.model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    dtype = torch.bfloat16 if use_bf16(device) else torch.float32
    torch.manual_seed(cfg.seed)
    base = load_model(cfg.model, device="cpu" if device == "cpu" else device, dtype=torch.float32)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    n_samples = cfg.steps * cfg.batch_size * cfg.grad_accum * world

    def sources_for(group: list[Task]) -> tuple[list[Task], int]:
        out, dropped = [], 0
        for t in group:
            if cfg.mode == "finetune":
                t = known_pairs_task(t)
                cands = [t] if len(t.train) >= 2 else []
            else:
                try:
                    cands = leave_one_out(t) if cfg.leave_out == 1 else leave_two_out(t)
                except AugmentSkipped:
                    cands = []
            keep = [c for c in cands if fits_at_all(c, cfg.mode, cfg, tokenizer)]
            dropped += len(cands) == 0 or not keep
            out.extend(keep)
        return out, dropped

    if is_main := _rank() == 0:
        total, trainable = count_parameters(base)
        write_json_atomic(run.manifest_file, {**manifest(cfg, ds.version, device, (total, None)),
                                              "n_tasks": len(tasks)})

    groups = [[t] for t in tasks] if cfg.per_task else [tasks]
    t_start = time.time()
    tokens_total, last_loss, val_losses, steps_done, status = 0, None, [], 0, "finished"
    counts_total: dict[str, int] = {}
    for gi, group in enumerate(groups):
        label = group[0].id if cfg.per_task else None
        sub = safe_name(label) if label else None
        final_dir = (run.adapters_dir / sub) if sub else (run.path / ("model" if cfg.model.full_finetune else "adapter"))
        if cfg.per_task and (final_dir / "adapter_config.json").exists():
            steps_done += cfg.steps
            continue  # finished before a resume
        sources, dropped_tasks = sources_for(group)
        counts_total["tasks_without_samples"] = counts_total.get("tasks_without_samples", 0) + dropped_tasks
        if not sources:
            if is_main:
                run.log(f"{label or 'run'}: no training sample fits (needs >= 2 train pairs within max_seq_len); "
                        "skipped")
            continue
        if cfg.model.full_finetune:
            model = base
        else:
            model = attach_lora(base, cfg.model)
        if is_main and gi == 0:
            total, trainable = count_parameters(model)
            m = RunDir(run.path).manifest()
            m.update(parameters=total, trainable_parameters=trainable)
            write_json_atomic(run.manifest_file, m)
        stream = SampleStream(sources, cfg.mode, n_samples, cfg, tokenizer)
        val = ValSet([t for t in val_tasks if t.id in {g.id for g in group}] if cfg.per_task else val_tasks, cfg,
                     tokenizer) if val_tasks else None
        out_dir = run.checkpoints_dir / sub if sub else run.checkpoints_dir
        args = _training_args(cfg, out_dir, device, has_eval=val is not None and len(val) > 0)
        cb = _make_callback(run, stop, label, steps_done, cfg.steps * len(groups), stream)
        trainer = Trainer(model=model, args=args, train_dataset=stream, eval_dataset=val if val and len(val) else None,
                          data_collator=make_collator(pad_id), callbacks=[cb], processing_class=tokenizer)
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # our callback writes metrics.jsonl, log.txt and a stderr line
        ckpt = run.last_checkpoint(sub) if resume else None
        out = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
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
                from ttft.runs import append_jsonl

                append_jsonl(run.metrics_file, {"step": steps_done, "time": time.time(), "eval_loss": vl,
                                                "final": True, **({"task": label} if label else {})})
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
        run_dir=str(run.path), status=status, steps=steps_done, train_tokens=tokens_total,
        train_tokens_per_second=tokens_total / elapsed if elapsed > 0 else 0.0,
        final_loss=last_loss, val_loss=float(np.mean(val_losses)) if val_losses else None, counts=counts_total,
    )


# --------------------------------------------------------------------------- task-parallel shards (torchrun)

_DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
             "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
             "TORCHELASTIC_RESTART_COUNT", "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_USE_AGENT_STORE",
             "TORCH_NCCL_ASYNC_ERROR_HANDLING", "TORCHELASTIC_ERROR_FILE")


def balanced_shards(tasks: Sequence[Task], world: int) -> list[list[str]]:
    """Split tasks over ``world`` processes so each gets about the same work: every task trains the same number of
    steps, so its cost grows with its length (token estimate) plus a fixed per-task part (adapter set-up, eval);
    longest first, each to the least-loaded shard (LPT). Deterministic, so every rank computes the same split.
    Round-robin by id left one of two CPU processes idle for most of a small run (7.7 s against 21.2 s)."""
    cost = {t.id: t.stats().tokens + 300 for t in tasks}
    loads = [0] * world
    shards: list[list[str]] = [[] for _ in range(world)]
    for tid in sorted(cost, key=lambda i: (-cost[i], i)):
        k = min(range(world), key=lambda i: (loads[i], i))
        shards[k].append(tid)
        loads[k] += cost[tid]
    return [sorted(s) for s in shards]


def shard_for_rank(cfg: TrainConfig, run_dir: str | None) -> tuple[TrainConfig, str, int, int]:
    """Per-task runs under torchrun are task-parallel, not data-parallel: rank r of W trains its share of the tasks
    (:func:`balanced_shards`) into ``<run_dir>/shard-<r>`` as an ordinary single-process run (no process group),
    one device per rank on GPUs. Returns (shard config, shard run dir, rank, world size)."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if run_dir is None:
        raise ConfigError("run_dir: pass --run-dir when launching per-task shards with torchrun")
    _, tasks = select_tasks(cfg.dataset, cfg.tasks, cfg.max_task_tokens)
    ids = balanced_shards(tasks, world)[rank]
    if not ids:
        raise ConfigError(f"tasks: shard {rank} of {world} has no task ({len(tasks)} tasks for {world} processes)")
    for k in _DIST_ENV:
        os.environ.pop(k, None)  # the shard is a plain single-process run: Trainer must not start DDP
    os.environ["TTFT_SHARD"] = f"{rank}/{world}"
    device = cfg.device
    if choose_device(cfg.device).startswith("cuda"):
        import torch

        device = f"cuda:{local % max(1, torch.cuda.device_count())}"
    shard = dataclasses.replace(cfg, tasks=tuple(ids), max_task_tokens=None, device=device,
                                threads=cfg.threads or (1 if device == "cpu" or choose_device(device) == "cpu" else 0))
    return shard, str(Path(run_dir) / f"shard-{rank}"), rank, world


def merge_shards(run_dir: str | os.PathLike, cfg: TrainConfig) -> TrainResult:
    """Merge ``shard-*/`` runs of a task-parallel per-task run into ``run_dir`` itself: adapters/, metrics.jsonl
    (time-ordered), status.json, result.json and config.json, so it reads like an unsharded run."""
    import shutil

    from ttft.runs import append_jsonl, read_json, read_jsonl

    run = RunDir(Path(run_dir))
    shards = sorted((p for p in run.path.glob("shard-*") if (p / "config.json").exists()),
                    key=lambda p: int(p.name.split("-")[1]))
    if not shards:
        raise ConfigError(f"run_dir: no shard-*/ runs to merge in {run.path}")
    results = [read_json(p / "result.json") or {} for p in shards]
    statuses = [RunDir(p).status().get("status", "lost") for p in shards]
    shard_tasks = [t for p in shards for t in RunDir(p).config().get("tasks", [])]
    write_json_atomic(run.config_file, {**cfg.to_json(), "tasks": shard_tasks, "max_task_tokens": None,
                                        "shards": len(shards)})
    man = RunDir(shards[0]).manifest()
    man.update(world_size=len(shards), n_tasks=sum(RunDir(p).manifest().get("n_tasks", 0) for p in shards))
    write_json_atomic(run.manifest_file, man)
    run.adapters_dir.mkdir(parents=True, exist_ok=True)
    for p in shards:
        for a in (p / "adapters").glob("*"):
            dst = run.adapters_dir / a.name
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(a, dst)
    lines = sorted((m for p in shards for m in read_jsonl(p / "metrics.jsonl")), key=lambda m: m.get("time", 0))
    if run.metrics_file.exists():
        run.metrics_file.unlink()
    for m in lines:
        append_jsonl(run.metrics_file, m)
    vals = [r["val_loss"] for r in results if r.get("val_loss") is not None]
    weights = [RunDir(p).manifest().get("n_tasks", 1) for p, r in zip(shards, results) if r.get("val_loss") is not None]
    status = "finished" if all(s == "finished" for s in statuses) else (
        "failed" if "failed" in statuses else "stopped")
    counts: dict[str, int] = {}
    for r in results:
        for k, v in (r.get("counts") or {}).items():
            counts[k] = counts.get(k, 0) + v
    res = TrainResult(
        run_dir=str(run.path), status=status, steps=sum(r.get("steps", 0) for r in results),
        train_tokens=sum(r.get("train_tokens", 0) for r in results),
        train_tokens_per_second=sum(r.get("train_tokens_per_second", 0.0) for r in results),
        final_loss=results[-1].get("final_loss") if results else None,
        val_loss=float(np.average(vals, weights=weights)) if vals else None, counts=counts,
    )
    write_json_atomic(run.path / "result.json", res.to_json())
    run.update_status(status=status, step=res.steps, max_steps=res.steps if status == "finished" else None,
                      shards=statuses, val_loss=res.val_loss, ended=time.time(), pid=None)
    return res
