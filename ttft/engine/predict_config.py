"""Every option of a prediction (the prediction folder's config.json)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

from ttft.core.augment import DIHEDRAL
from ttft.runs.rundir import safe_name

COLOR_CHOICES = ("keep-bg", "all", "none")


DTYPES = ("auto", "float32", "bfloat16", "float16")


#: what a prediction folder's config.json adds to PredictConfig (the resolved model source, data version)
RESOLVED_KEYS = ("kind", "source", "dataset_version")


class PredictError(ValueError):
    """An option, run or model that cannot be used; the message names it."""


@dataclass
class PredictConfig:
    """Every option of a prediction (saved as the prediction folder's config.json)."""

    run: str | None = None
    base_model: str | None = None
    dataset: str | None = None
    tasks: tuple[str, ...] = ()
    max_task_tokens: int | None = None
    views: int = 8
    transforms: tuple[str, ...] = DIHEDRAL
    colors: str = "keep-bg"
    shuffle: bool = False
    seed: int = 0
    sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 0
    max_new_tokens: int = 0
    max_seq_len: int = 0
    val_loss: bool = True
    format: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    threads: int = 0
    name: str | None = None
    out: str | None = None

    HELP: ClassVar[dict[str, str]] = {
        "run": "a training run folder: its base model + adapter/ (per-task runs: adapters/<task>/ matched to each "
               "task), or its full fine-tune model/",
        "base_model": "a bare base model instead of a run: 'default' (the embedded model), a folder or a hub id",
        "dataset": "bundled name or path (default with a run: the run's dataset)",
        "tasks": "task ids (empty: the run's tasks, or every task of the dataset)",
        "max_task_tokens": "use only tasks whose token estimate (1 per cell + 1 per row) is at most this",
        "views": "augmented views per test input (K); view 0 is the identity, then the dihedral transforms in turn",
        "transforms": "dihedral transforms the views cycle through (" + ", ".join(DIHEDRAL) + ")",
        "colors": "colour permutation of views after the first: keep-bg (shuffle 1-9), all (shuffle 0-9), none",
        "shuffle": "also reorder the train pairs of views after the first",
        "seed": "seed of the colour maps, orders and sampling",
        "sample": "sample instead of greedy decoding",
        "temperature": "sampling temperature (with sample)",
        "top_p": "nucleus sampling threshold (with sample)",
        "batch_size": "sequences per generate call (0: automatic, from free memory and sequence length)",
        "max_new_tokens": "most tokens generated per view (0: estimated from the task's grid sizes); never more "
                          "than a 30x30 grid needs",
        "max_seq_len": "longest prompt + output (0: the run's encoding.max_seq_len, or 8192 for a bare model, "
                       "capped by the model's context); longer views are unanswered",
        "val_loss": "compute the val loss (mean loss on the test-output tokens) where the test outputs are known",
        "format": "grid text format for a bare model (a run uses its own): minimal, shape+rows, separated",
        "device": "auto, cpu, cuda, cuda:N or mps",
        "dtype": "auto (bfloat16 on a GPU that has it, else float32), float32, bfloat16, float16",
        "threads": "CPU threads for torch (0: torch's default)",
        "name": "name of the prediction folder under <run>/predictions/ (default: a time stamp and the views)",
        "out": "write the prediction folder here instead",
    }

    def validate(self) -> "PredictConfig":
        def bad(name: str, msg: str):
            raise PredictError(f"{name}: {msg}, got {getattr(self, name)!r}")

        if bool(self.run) == bool(self.base_model):
            raise PredictError("give either a run (--run RUN_DIR) or a base model (--base-model MODEL), not both "
                               "or neither")
        if self.base_model and not self.dataset:
            bad("dataset", "is needed with a base model")
        for name in ("views",):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                bad(name, "must be a positive integer")
        for name in ("batch_size", "max_new_tokens", "max_seq_len", "threads"):
            v = getattr(self, name)
            if type(v) is not int or v < 0:
                bad(name, "must be a non-negative integer (0: automatic)")
        if self.max_task_tokens is not None and (type(self.max_task_tokens) is not int or self.max_task_tokens < 1):
            bad("max_task_tokens", "must be a positive integer")
        if isinstance(self.transforms, str) or not self.transforms or any(t not in DIHEDRAL for t in self.transforms):
            bad("transforms", f"must be a non-empty list from {', '.join(DIHEDRAL)}")
        if self.colors not in COLOR_CHOICES:
            bad("colors", f"must be one of {', '.join(COLOR_CHOICES)}")
        distinct = len({"identity", *self.transforms})
        if self.colors == "none" and not self.shuffle and not self.sample and self.views > distinct:
            bad("views", f"must be at most {distinct} with colors 'none' and no shuffle (more views would repeat "
                         "a view)")
        if type(self.seed) is not int:
            bad("seed", "must be an integer")
        for name in ("sample", "shuffle", "val_loss"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "must be true or false")
        if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                or not math.isfinite(self.temperature) or self.temperature <= 0:
            bad("temperature", "must be a positive number")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            bad("top_p", "must be in (0, 1]")
        if self.format is not None and self.format not in ("minimal", "shape+rows", "separated"):
            bad("format", "must be minimal, shape+rows or separated")
        if self.dtype not in DTYPES:
            bad("dtype", f"must be one of {', '.join(DTYPES)}")
        from ttft.engine.models import ModelError, choose_device

        try:
            choose_device(self.device)
        except ModelError as e:
            raise PredictError(f"device: {e}") from None
        if self.name is not None and (not self.name.strip() or safe_name(self.name) != self.name):
            bad("name", "must be a plain folder name (letters, digits, . _ -)")
        return self

    def to_json(self) -> dict:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_json(cls, d: dict) -> "PredictConfig":
        """From ``to_json()`` or a prediction folder's config.json (whose resolved extras are dropped)."""
        if not isinstance(d, dict):
            raise PredictError(f"a prediction config must be a JSON object, got {d!r}")
        d = {k: v for k, v in d.items() if k not in RESOLVED_KEYS}
        names = {f.name for f in fields(cls)}
        extra = set(d) - names
        if extra:
            raise PredictError(f"unknown prediction option(s): {', '.join(sorted(extra))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
