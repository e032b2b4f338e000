"""Every option of a training run (the run's config.json)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import ClassVar

from ttft.core.augment import AugmentOptions
from ttft.core.encoding import EncodingConfig
from ttft.engine.models import ModelConfig, ModelError, choose_device
from ttft.options import ConfigError

MODES = ("finetune", "ttft")


SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")




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
