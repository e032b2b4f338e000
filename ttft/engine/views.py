"""Inference views of a task (augmented copies to vote over, with ``views_from leave-one-out`` each also without one
train pair), MARC's fallback when none of a test input's leave-one-out views fits (:func:`fallback_plan`: the same
views leaving two pairs out) and the generation budget per view."""

from __future__ import annotations

import dataclasses
import itertools
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


#: the train pairs a view leaves out: one pair's index, two (MARC's fallback, :func:`fallback_plan`), or None
LeftOut = int | tuple[int, ...] | None


@dataclass(frozen=True)
class View:
    """One inference view: its augmentation and the train pairs it leaves out (an index in the task, a tuple of two
    with the leave-two-out fallback; None: none). The spec applies to the task without them (:func:`view_task`)."""

    spec: AugmentSpec
    left_out: LeftOut = None


def left_out_pairs(left_out: LeftOut) -> tuple[int, ...]:
    """The indices of the train pairs ``left_out`` names (() for None)."""
    if left_out is None:
        return ()
    return (left_out,) if isinstance(left_out, int) else tuple(left_out)


def without_pair(task: Task, left_out: LeftOut) -> Task:
    """``task`` without the train pairs ``left_out`` names (None: the task itself), the rest in their order."""
    drop = left_out_pairs(left_out)
    if not drop:
        return task
    return dataclasses.replace(task, train=tuple(p for k, p in enumerate(task.train) if k not in drop))


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


def fallback_plan(task: Task, cfg: PredictConfig) -> list[View]:
    """MARC's fallback (``get_preprocessed_tasks_single`` in ekinakyurek/marc ``inference/preprocess.py``): when no
    inference task of a test input fits the token limit, MARC makes them again leaving one pair more out
    (``include_n + [include_n[-1] + 1]``: with its ``--include_n 1``, every unordered pair of train pairs left out)
    and keeps those that fit; once, not again. These are the views leaving two pairs out, numbered after
    :func:`view_plan`'s (the prediction adds them only for a test input none of whose views fits):
    ``views_from`` marc: :func:`marc_views` with two pairs left out (each pair, in itertools order, the rest in their
    order and 2 random orders, then MARC's five transforms of one of those at random: their own draws);
    leave-one-out: for each of the K views, one view per unordered pair (i, j) without both (view ``k * C + c`` is
    view k's augmentation, drawn for the n-2 pairs left, without the c-th pair). ``left_out`` is the pair
    ``(i, j)``. None for ``views_from`` task, or a task with fewer than 3 train pairs: MARC would then show the
    test input with no demonstration; ttft never leaves a view without train pairs."""
    if cfg.views_from == "marc":
        return marc_views(task, cfg.seed, leave=2)
    if cfg.views_from != "leave-one-out" or len(task.train) < 3:
        return []
    combos = list(itertools.combinations(range(len(task.train)), 2))
    per_pair = [view_specs(without_pair(task, c), cfg) for c in combos]
    return [View(per_pair[c][k], combos[c]) for k in range(cfg.views) for c in range(len(combos))]


def n_views(task: Task, cfg: PredictConfig) -> int:
    """How many views :func:`view_plan` makes per test input (not counting :func:`fallback_plan`'s, added only where
    none of them fits)."""
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


def marc_views(task: Task, seed: int = 0, leave: int = 1) -> list[View]:
    """MARC's inference tasks (``get_leave_n_test_task`` with n = ``leave``, permute_n = 2; its TTT models predict
    with n = 1): for each train pair left out (in order), the rest in their order and in 2 random orders (a task
    equal to one already there, as an order drawn twice or pairs alike, is kept once: MARC keeps a set); then each of
    :data:`MARC_TRANSFORMS` applied to one of those drawn at random, unless it leaves that task unchanged (symmetric
    grids). No colour maps. A task with one train pair:
    the task itself in 1 + 2 orders (just itself) and the transforms. ``leave=2`` (the fallback,
    :func:`fallback_plan`): the same for each unordered pair of train pairs left out (``left_out`` ``(i, j)``), with
    its own draws; none for a task with fewer than 3 train pairs. The draws are ttft's (seeded by ``seed``), not
    MARC's RandomState stream."""
    if leave not in (1, 2):
        raise ValueError(f"leave must be 1 or 2, got {leave!r}")
    rng = np.random.default_rng([seed, 0x4D41] if leave == 1 else [seed, 0x4D41, leave])
    n = len(task.train)
    drops: list[LeftOut]
    if leave == 1:
        drops = list(range(n)) if n > 1 else [None]
    else:
        drops = list(itertools.combinations(range(n), 2)) if n > 2 else []
    base: list[View] = []
    for j in drops:
        m = n - len(left_out_pairs(j))
        orders = [tuple(range(m))] + [tuple(int(i) for i in rng.permutation(m)) for _ in range(MARC_PERMUTE_N)]
        for o in dict.fromkeys(orders):
            v = View(AugmentSpec(order=None if o == tuple(range(m)) else o), j)
            if not any(_same(view_task(task, v), view_task(task, b)) for b in base):  # MARC keeps a set of tasks
                base.append(v)
    out = list(base)
    for geo in MARC_TRANSFORMS if base else ():
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


def room_floor(view_task: Task, test_index: int, fmt: str, count: Callable[[str], int]) -> int:
    """The least output budget a view is predicted with when its prompt leaves less than :func:`max_output_tokens`
    under ``max_seq_len``: the tokens of the largest grid of its own (train outputs and the test input) plus
    slack. A view with at least this much room is generated in the room it has (only an output larger than every
    grid of its task can be cut off); a view with less is unanswered."""
    grids = [p.output for p in view_task.train if p.output is not None] + [view_task.test[test_index].input]
    return max(count(grid_to_text(g, fmt)) for g in grids) + _SLACK_TOKENS


def max_output_tokens(fmt: str, count: Callable[[str], int]) -> int:
    """Tokens of the largest possible output (a 30x30 grid) plus slack."""
    probe = ((np.arange(MAX_SIDE)[:, None] * 7 + np.arange(MAX_SIDE)[None, :] * 3) % 10).astype(np.uint8)
    return count(grid_to_text(probe, fmt)) + _SLACK_TOKENS
