"""Prediction metrics (arc24's definitions), per test output, then per task (mean), then over tasks (mean).

For one test output with a known truth, given the grids predicted by its K augmented views (mapped back to the
original frame; ``None`` where a view's output could not be parsed) and the two voted attempts:

* ``accuracy``       share of the K view predictions exactly right;
* ``pass_n``         1 when any view prediction is right, else 0;
* ``vote_1``         1 when attempt 1 (the most voted grid) is right;
* ``pass_at_2``      1 when attempt 1 or attempt 2 is right (arc24's ``vote_2``; Kaggle's score of a test output);
* ``correct_pixels`` mean over views of the share of cells right when the shape matches the truth, else 0;
* ``correct_size``   share of views whose shape matches the truth;
* ``max_correct_pixels`` the best view's share of cells right (views of the truth's shape), else 0;
* ``any_correct_size`` 1 when any view has the truth's shape, else 0;
* ``unanswered``     share of views whose output could not be parsed (or was never generated: prompt too long);
* ``val_loss``       mean loss on the test-output tokens (the training ``ValSet`` definition), when computed.

``unanswered`` needs no truth; the others are ``None`` when the truth is unknown. A task's metrics are the mean over
its test outputs; the summary is the mean over tasks (values that are ``None`` are left out of each mean, and a mean
of nothing is ``None``). Nothing here imports torch or streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: metric names, in display order
METRICS: tuple[str, ...] = (
    "accuracy",
    "pass_n",
    "vote_1",
    "pass_at_2",
    "correct_pixels",
    "correct_size",
    "unanswered",
    "val_loss",
    "max_correct_pixels",
    "any_correct_size",
)
#: metrics that need the truth
TRUTH_METRICS: tuple[str, ...] = (
    "accuracy",
    "pass_n",
    "vote_1",
    "pass_at_2",
    "correct_pixels",
    "correct_size",
    "max_correct_pixels",
    "any_correct_size",
)


def as_grid(g: Any) -> np.ndarray | None:
    """A grid as a uint8 array (from a list of lists or an array), or None."""
    if g is None:
        return None
    a = np.asarray(g, dtype=np.uint8)
    return a if a.ndim == 2 and a.size else None


def same_grid(a: Any, b: Any) -> bool:
    """Whether two grids (arrays or lists) are identical; False when either is None."""
    a, b = as_grid(a), as_grid(b)
    return a is not None and b is not None and a.shape == b.shape and bool(np.array_equal(a, b))


def pixel_share(pred: Any, truth: Any) -> float:
    """Share of cells right when the shapes match, else 0 (also 0 for a missing prediction)."""
    p, t = as_grid(pred), as_grid(truth)
    if p is None or t is None or p.shape != t.shape:
        return 0.0
    return float(np.mean(p == t))


def score_output(
    views: Sequence[Any], attempts: Sequence[Any], truth: Any = None, val_loss: float | None = None
) -> dict[str, float | None]:
    """Metrics of one test output from its view predictions (``None`` = unanswered) and its attempts."""
    n = len(views)
    out: dict[str, float | None] = {k: None for k in METRICS}
    out["unanswered"] = (sum(v is None for v in views) / n) if n else None
    out["val_loss"] = None if val_loss is None or not math.isfinite(val_loss) else float(val_loss)
    t = as_grid(truth)
    if t is None or not n:
        return out
    right = [same_grid(v, t) for v in views]
    out["accuracy"] = sum(right) / n
    out["pass_n"] = float(any(right))
    att = [a for a in attempts if a is not None]
    out["vote_1"] = float(bool(att) and same_grid(att[0], t))
    out["pass_at_2"] = float(any(same_grid(a, t) for a in att[:2]))
    shares = [pixel_share(v, t) for v in views]
    out["correct_pixels"] = float(np.mean(shares))
    out["max_correct_pixels"] = float(max(shares))
    grids = [as_grid(v) for v in views]
    sizes = [g is not None and g.shape == t.shape for g in grids]
    out["correct_size"] = float(np.mean(sizes))
    out["any_correct_size"] = float(any(sizes))
    return out


def mean_metrics(items: Iterable[Mapping[str, Any]], keys: Sequence[str] = METRICS) -> dict[str, float | None]:
    """Per key, the mean of the values that are not None (None when there are none)."""
    items = list(items)
    out: dict[str, float | None] = {}
    for k in keys:
        vals = [float(d[k]) for d in items if d.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def task_metrics(outputs: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """A task's metrics: the mean over its test outputs, plus ``solved`` (every scored output right within two
    attempts; None when no output has a known truth)."""
    m = mean_metrics(outputs)
    m["solved"] = None if m["pass_at_2"] is None else float(m["pass_at_2"] == 1.0)
    return m


def summarize(per_task: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The mean over tasks of each metric, with ``n_tasks``, ``n_scored`` (tasks with a known truth) and
    ``solved`` (how many tasks are solved)."""
    m: dict[str, Any] = mean_metrics(per_task.values())
    m["n_tasks"] = len(per_task)
    m["n_scored"] = sum(1 for d in per_task.values() if d.get("pass_at_2") is not None)
    m["solved"] = sum(1 for d in per_task.values() if d.get("solved"))
    return m
