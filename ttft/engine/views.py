"""Inference views of a task (augmented copies to vote over, with ``views_from leave-one-out`` each also without one
train pair) and the generation budget per view."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ttft.core import profiles
from ttft.core.augment import AugmentSpec, apply_task
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


@dataclass(frozen=True)
class View:
    """One inference view: its augmentation and the train pair it leaves out (its index in the task; None: none).
    The spec applies to the task without that pair (:func:`view_task`)."""

    spec: AugmentSpec
    left_out: int | None = None


def without_pair(task: Task, left_out: int | None) -> Task:
    """``task`` without train pair ``left_out`` (None: the task itself)."""
    if left_out is None:
        return task
    return dataclasses.replace(task, train=task.train[:left_out] + task.train[left_out + 1 :])


def view_task(task: Task, view: View) -> Task:
    """The view's task: its left-out pair dropped, then its augmentation applied."""
    return apply_task(without_pair(task, view.left_out), view.spec)


def view_plan(task: Task, cfg: PredictConfig) -> list[View]:
    """Every view of a task, in view order. ``views_from`` task: the K views of :func:`view_specs`. leave-one-out
    (MARC's inference tasks leave one train pair out): for each of the K views, one view per train pair without
    that pair (view ``k * n + j`` is view k's augmentation, drawn for the n-1 pairs, without pair j), as MARC's
    leave-one-out tasks; a task with a single train pair keeps its K whole views."""
    n = len(task.train)
    if cfg.views_from == "marc":
        return marc_views(task, cfg.seed)
    if cfg.views_from != "leave-one-out" or n < 2:
        return [View(s) for s in view_specs(task, cfg)]
    per_pair = [view_specs(without_pair(task, j), cfg) for j in range(n)]
    return [View(per_pair[j][k], j) for k in range(cfg.views) for j in range(n)]


def n_views(task: Task, cfg: PredictConfig) -> int:
    """How many views :func:`view_plan` makes per test input."""
    n = len(task.train)
    if cfg.views_from == "marc":
        return len(marc_views(task, cfg.seed))
    return cfg.views * (n if cfg.views_from == "leave-one-out" and n > 1 else 1)


#: the transforms of MARC's inference tasks (``inference/preprocess.py``: Transpose(), Flip(0), Flip(1), Rotate(90),
#: Rotate(180)) as ttft's: numpy's rot90 (MARC's Rotate(90)) turns counter-clockwise, ttft's rot270
MARC_TRANSFORMS = ("transpose", "flip_v", "flip_h", "rot270", "rot180")
#: MARC's ``permute_n``: random train orders added per leave-one-out task
MARC_PERMUTE_N = 2


def _same(a: Task, b: Task) -> bool:
    pairs = list(zip(a.train, b.train)) + list(zip(a.test, b.test))
    return all(
        np.array_equal(p.input, q.input)
        and (p.output is None) == (q.output is None)
        and (p.output is None or np.array_equal(p.output, q.output))
        for p, q in pairs
    )


def marc_views(task: Task, seed: int = 0) -> list[View]:
    """MARC's inference tasks (``get_leave_n_test_task`` with n = 1, permute_n = 2, as its TTT models predict):
    for each train pair left out (in order), the rest in their order and in 2 random orders (a task equal to one
    already there, as an order drawn twice or pairs alike, is kept once: MARC keeps a set); then each of
    :data:`MARC_TRANSFORMS` applied to one of those drawn at random, unless it leaves that task unchanged (symmetric
    grids). No colour maps. A task with one train pair:
    the task itself in 1 + 2 orders (just itself) and the transforms. The draws are ttft's (seeded by ``seed``),
    not MARC's RandomState stream."""
    rng = np.random.default_rng([seed, 0x4D41])
    n = len(task.train)
    base: list[View] = []
    for j in range(n) if n > 1 else [None]:
        m = n - 1 if j is not None else n
        orders = [tuple(range(m))] + [tuple(int(i) for i in rng.permutation(m)) for _ in range(MARC_PERMUTE_N)]
        for o in dict.fromkeys(orders):
            v = View(AugmentSpec(order=None if o == tuple(range(m)) else o), j)
            if not any(_same(view_task(task, v), view_task(task, b)) for b in base):  # MARC keeps a set of tasks
                base.append(v)
    out = list(base)
    for geo in MARC_TRANSFORMS:
        src = base[int(rng.integers(len(base)))]
        v = View(dataclasses.replace(src.spec, geometric=geo), src.left_out)
        if not _same(view_task(task, v), view_task(task, src)):
            out.append(v)
    return out


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
