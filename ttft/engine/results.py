"""What a prediction writes per task and per view: the tasks.jsonl line of a task (its test outputs' candidates,
ranked by the chosen ``--score``, attempts and metrics) and the predictions.jsonl line of a view."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ttft.core import metrics as M
from ttft.core.data import Task
from ttft.core.voting import attempts_of, vote
from ttft.engine.generate import Generated, Predictor
from ttft.engine.predict_config import PredictConfig

if TYPE_CHECKING:
    from ttft.engine.predict import ViewItem


def task_result(
    task: Task,
    items: list[ViewItem],
    vloss: list[float | None],
    adapter: str | None,
    scorer: Callable[[int, list, list[ViewItem]], list] | None = None,
) -> dict:
    """The tasks.jsonl line of a task: per test input its attempts, candidates, input, truth and metrics.
    ``scorer(test_index, candidates, items)`` re-ranks the voted candidates (``--score`` poe, votes+poe, marc)."""
    tests = []
    for i, p in enumerate(task.test):
        its = sorted((it for it in items if it.test_index == i), key=lambda it: it.view)
        grids = [it.grid for it in its]
        entries = [(it.view, g, o) for it in its for g, o in _outputs(it)]
        cands = vote(
            [g for _, g, _ in entries],
            [o.mean_logprob if o else None for _, _, o in entries],
            views=[v for v, _, _ in entries],
            seq_logprobs=[o.logprob if o else None for _, _, o in entries],
        )
        if scorer is not None and cands:
            cands = scorer(i, cands, its)
        att = attempts_of(cands)
        metrics = M.score_output(grids, att, p.output, vloss[i] if i < len(vloss) else None)
        tests.append(
            {
                "test_index": i,
                "input": p.input.tolist(),
                "truth": None if p.output is None else p.output.tolist(),
                "attempts": [None if a is None else a.tolist() for a in att],
                "candidates": [c.to_json() for c in cands],
                "n_views": len(its),
                "metrics": metrics,
            }
        )
    return {
        "task": task.id,
        "adapter": adapter,
        "tests": tests,
        "metrics": M.task_metrics([t["metrics"] for t in tests]),
    }


def _outputs(it: ViewItem) -> list[tuple[np.ndarray | None, Generated | None]]:
    """A view's outputs and their grids: DFS's every output, else the one generated."""
    if it.alts is not None and it.alt_grids is not None:
        return list(zip(it.alt_grids, it.alts))
    return [(it.grid, it.out)]


def item_line(it: ViewItem, truth: np.ndarray | None) -> dict:
    """The predictions.jsonl line of one view (with decode dfs, ``outputs``: every output found)."""
    extra = {}
    if it.alts is not None:
        extra["outputs"] = [
            {"text": o.text, "grid": None if g is None else g.tolist(), "logprob": o.logprob, "tokens": len(o.tokens)}
            for g, o in _outputs(it)
        ]
        extra["cut_short"] = it.cut_short
    return {
        "task": it.task,
        "test_index": it.test_index,
        "view": it.view,
        "spec": it.spec.to_json(),
        "left_out": list(it.left_out) if isinstance(it.left_out, tuple) else it.left_out,
        "text": it.out.text if it.out else None,
        "grid": None if it.grid is None else it.grid.tolist(),
        "unanswered": it.grid is None,
        "reason": it.parse_reason,
        "mean_logprob": it.out.mean_logprob if it.out else None,
        "logprob": it.out.logprob if it.out and it.out.tokens else None,
        "tokens": len(it.out.tokens) if it.out else 0,
        "prompt_tokens": None if it.prompt is None else int(len(it.prompt)),
        "correct": None if truth is None else M.same_grid(it.grid, truth),
        **extra,
    }


def scorer_for(task: Task, cfg: PredictConfig, pred: Predictor):
    """The re-ranking of ``cfg.score`` (None for plain votes): poe and votes+poe score every candidate under every
    view; marc votes within the views' transformation groups, then across them."""
    if cfg.score == "votes":
        return None
    from ttft.engine.scoring import marc_rank, rank, view_scores

    def score(i: int, cands: list, its: list[ViewItem]) -> list:
        its = sorted(its, key=lambda it: it.view)
        if cfg.score == "marc":
            return marc_rank(cands, {it.view: it.spec.geometric for it in its})
        m = view_scores(
            pred,
            task,
            i,
            [c.grid for c in cands],
            [it.spec for it in its],
            [it.prompt for it in its],
            cfg.constrain,
            [it.left_out for it in its],
        )
        return rank(cands, m, cfg.score)

    return score
