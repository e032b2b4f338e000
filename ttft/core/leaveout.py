"""Leave-out tasks from the train pairs only: n-1, n-2, and the seed's n-1 ∪ n-2."""

from __future__ import annotations

import itertools

import numpy as np

from ttft.core.augment import AugmentSkipped
from ttft.core.compose import (
    _check_int,
)
from ttft.core.data import Task


def leave_one_out(task: Task) -> list[Task]:
    """n tasks from a task with n train pairs: task k has train pair k as its only test pair and the other train
    pairs as train, with id ``<id>/n-1/<k>``. The original test pairs are never used.

    Raises :class:`AugmentSkipped` when the task has fewer than 2 train pairs."""
    n = len(task.train)
    if n < 2:
        raise AugmentSkipped(f"leave-one-out needs at least 2 train pairs, the task has {n}", task=task.id)
    return [
        Task(f"{task.id}/n-1/{k}", task.train[:k] + task.train[k + 1 :], (task.train[k],), source=task.source)
        for k in range(n)
    ]


def leave_two_out(task: Task, max_tasks: int | None = None, seed: int | None = None) -> list[Task]:
    """Tasks with two train pairs held out as the two test pairs (in their original order) and the other n-2 as
    train; id ``<id>/n-2/<i>-<j>``. All n(n-1)/2 of them, or ``max_tasks`` drawn with ``seed`` (sorted by i, j).
    The original test pairs are never used. Raises :class:`AugmentSkipped` when the task has fewer than 3 train
    pairs."""
    n = len(task.train)
    if n < 3:
        raise AugmentSkipped(f"leave-two-out needs at least 3 train pairs, the task has {n}", task=task.id)
    combos = list(itertools.combinations(range(n), 2))
    if max_tasks is not None:
        _check_int("max_tasks", max_tasks, 0)
        if max_tasks < len(combos):
            rng = np.random.default_rng(seed)
            combos = sorted(combos[int(i)] for i in rng.choice(len(combos), size=max_tasks, replace=False))
    return [
        Task(
            f"{task.id}/n-2/{i}-{j}",
            tuple(p for k, p in enumerate(task.train) if k not in (i, j)),
            (task.train[i], task.train[j]),
            source=task.source,
        )
        for i, j in combos
    ]


def seed_leave_two_out(task: Task) -> list[Task]:
    """The seed experiment's n-2 set (arc24 notebook 004, ``evaluation_n-2.json``): the n-1 tasks and, for each n-1
    task with at least two train pairs, its own n-1 tasks (train pair ``j`` of the n-1 task as the only test, the
    pair left out first dropped); ids ``<id>/n-1/<i>`` and ``<id>/n-1/<i>/n-1/<j>``. n + n(n-1) tasks from n train
    pairs: 4,935 on ARC-AGI-1 evaluation (1,363 n-1 + 3,572 n-2), and a task with two train pairs keeps its n-1
    tasks. Raises :class:`AugmentSkipped` when the task has fewer than 2 train pairs."""
    out: list[Task] = []
    for t in leave_one_out(task):
        out.append(t)
        if len(t.train) >= 2:
            out.extend(leave_one_out(t))
    return out


def leave_out_tasks(task: Task, leave_out: int = 1, n2_only: bool = False) -> list[Task]:
    """The leave-out tasks of ``task``: ``leave_out=1`` its n-1 tasks; ``leave_out=2`` the seed's n-2 set, n-1 and
    n-2 tasks together (:func:`seed_leave_two_out`), or with ``n2_only`` only the tasks with two pairs left out
    (:func:`leave_two_out`: unordered pairs, both held out as test pairs; ttft's n-2 before issue 14). Raises
    :class:`AugmentSkipped` when there are none."""
    if leave_out == 1:
        return leave_one_out(task)
    if leave_out == 2:
        return leave_two_out(task) if n2_only else seed_leave_two_out(task)
    raise ValueError(f"leave_out must be 1 or 2, got {leave_out!r}")


def leave_out_parent(task_id: str) -> str:
    """The id of the task a leave-out task was built from (``abc/n-1/2/n-1/0`` -> ``abc``); other ids unchanged."""
    for mark in ("/n-1/", "/n-2/"):
        if mark in task_id:
            task_id = task_id[: task_id.index(mark)]
    return task_id
