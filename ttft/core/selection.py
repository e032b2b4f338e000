"""TODO docstring."""

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
