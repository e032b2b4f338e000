"""Options of the seed ablation experiment (the experiment folder's config.json) and its rows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from ttft.core.augment import DIHEDRAL

ROWS: dict[str, dict | None] = {
    "baseline": None,
    "n-1": {"augment": {"transforms": ["identity"], "colors": "none"}},
    "n-1 + geometric": {"augment": {"transforms": list(DIHEDRAL), "colors": "none"}},
    "n-1 + geometric + colour": {"augment": {"transforms": list(DIHEDRAL), "colors": "keep-bg"}},
    "preserve original colours": {"augment": {"transforms": list(DIHEDRAL), "colors": "keep-bg"},
                                  "keep_original_colors": 0.5},
    "n-2": {"augment": {"transforms": list(DIHEDRAL), "colors": "keep-bg"}, "leave_out": 2},
}


def slug(row: str) -> str:
    return row.replace(" + ", "+").replace(" ", "-")


@dataclass
class AblationConfig:
    """Options of ``python -m ttft experiment seed-ablation`` (saved as the experiment's config.json)."""

    dataset: str = "arc-agi-1/evaluation"
    tasks: tuple[str, ...] = ()
    max_task_tokens: int | None = 1200
    limit: int | None = None
    rows: tuple[str, ...] = tuple(ROWS)
    base_model: str = "default"
    steps: int = 30
    lr: float = 1e-3
    lora_r: int = 16
    lora_alpha: int = 32
    max_seq_len: int = 2048
    views: int = 4
    seed: int = 0
    gpus: int = 1
    device: str = "auto"

    HELP: ClassVar[dict[str, str]] = {
        "dataset": "dataset of the tasks to solve (test outputs must be known to score)",
        "tasks": "task ids (empty: every task under max_task_tokens)",
        "max_task_tokens": "use only tasks whose token estimate is at most this (the default subset: ARC-AGI-1 "
                           "evaluation tasks under 1,200 tokens, about 170)",
        "limit": "use only the first N selected tasks (sorted by id)",
        "rows": "which rows to run: " + ", ".join(ROWS),
        "base_model": "the model every row starts from",
        "steps": "TTFT optimizer steps per task (30: the 172-task default finishes in about 1.5 h on 2 CPU cores; "
                 "augmented rows overtake plain n-1 only from about 100 steps, see docs/experiments.md)",
        "lr": "TTFT learning rate",
        "lora_r": "LoRA rank",
        "lora_alpha": "LoRA alpha",
        "max_seq_len": "longest training sample",
        "views": "augmented views per test input at prediction (voted)",
        "seed": "seed of every row (same samples where rows agree)",
        "gpus": "processes for the TTFT stage: N devices, or N CPU processes (torchrun, task-parallel)",
        "device": "auto, cpu, cuda, mps",
    }

    def validate(self) -> "AblationConfig":
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown or not self.rows:
            raise ValueError(f"rows: unknown row(s) {', '.join(unknown) or '(none given)'}; choose from "
                             f"{', '.join(ROWS)}")
        for name in ("steps", "views", "gpus", "lora_r", "lora_alpha", "max_seq_len"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if not isinstance(self.lr, (int, float)) or self.lr <= 0:
            raise ValueError(f"lr: must be a positive number, got {self.lr!r}")
        if self.limit is not None and (type(self.limit) is not int or self.limit < 1):
            raise ValueError(f"limit: must be a positive integer, got {self.limit!r}")
        return self

    def to_json(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_json(cls, d: dict) -> "AblationConfig":
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        return cls(**kw)
