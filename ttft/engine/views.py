"""Inference views of a task (augmented copies to vote over) and the generation budget per view."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ttft.core import profiles
from ttft.core.augment import AugmentSpec
from ttft.core.data import MAX_SIDE, Task
from ttft.core.gridtext import grid_to_text
from ttft.engine.predict_config import PredictConfig

#: generated tokens past the estimated output size (end-of-sequence, end-of-turn texts)
_SLACK_TOKENS = 4


def view_specs(task: Task, cfg: PredictConfig) -> list[AugmentSpec]:
    """The K inference views of a task (see :func:`ttft.core.profiles.view_specs`: ttft's own recipe by default,
    arc24's with its profile)."""
    return profiles.view_specs(
        task, cfg.views, cfg.transforms, cfg.colors, cfg.p_bg, cfg.shuffle, cfg.identity_view, cfg.seed
    )


def output_token_estimate(view_task: Task, test_index: int, fmt: str, count: Callable[[str], int]) -> int:
    """The generation budget of a view's test output: always enough for the largest grid the format can express
    (30x30), whatever the task's grids. An estimate from the train pairs (as ttft did before) cuts off every test
    output larger than all of them (4 of 400 ARC-AGI-1 evaluation tasks); generation still ends at the model's
    end of sequence, so the budget only costs time on views that never end."""
    return max_output_tokens(fmt, count)


def max_output_tokens(fmt: str, count: Callable[[str], int]) -> int:
    """Tokens of the largest possible output (a 30x30 grid) plus slack."""
    probe = ((np.arange(MAX_SIDE)[:, None] * 7 + np.arange(MAX_SIDE)[None, :] * 3) % 10).astype(np.uint8)
    return count(grid_to_text(probe, fmt)) + _SLACK_TOKENS
