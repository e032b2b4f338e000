"""The strategy explorer: how each way of choosing attempts 1 and 2 would rank a test output's candidates, and which
strategies solve each task, from a prediction's tasks.jsonl and predictions.jsonl lines. Pure functions (data in,
frames out); nothing here imports streamlit.

Strategies (:data:`STRATEGIES`): ``votes`` (most views, ties by mean log-prob), ``poe`` and ``votes+poe`` (where the
candidates carry poe scores: predictions made with ``--score poe`` or ``votes+poe``), ``marc`` (MARC's two-level
voting over the views' transformation groups; always available, computed from the candidates' views and the views'
specs, or read from the ranks of a ``--score marc`` prediction) and ``oracle`` (solved when any candidate is right:
what a perfect selection would get). Each ranking is the engine's own definition
(:func:`ttft.core.voting.poe_orders`, :func:`ttft.core.marcvote.vote_candidates`), so a strategy's top two here are
the attempts it gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ttft.core.marcvote import as_key, vote_candidates
from ttft.core.metrics import same_grid
from ttft.core.voting import poe_orders
from ttft.views.predviz import describe_spec, shape_text

#: the selection strategies compared, then the oracle
STRATEGIES = ("votes", "poe", "votes+poe", "marc")
ORACLE = "oracle"

Views = Sequence[Mapping[str, Any]]


def _vote_order(cands: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indices of the voted candidates (not the grids only MARC's majority made) in vote order: their recorded
    ``ranks.votes``, else their order in the line (a ``--score votes`` prediction is written in vote order)."""
    real = [i for i, c in enumerate(cands) if c.get("views") or c.get("votes")]
    return sorted(real, key=lambda i: ((cands[i].get("ranks") or {}).get("votes", i), i))


def _groups(views: Views) -> dict[int, str]:
    """MARC's group of each view: its geometric transform."""
    return {int(v["view"]): (v.get("spec") or {}).get("geometric", "identity") for v in views}


def _marc(test: Mapping[str, Any], views: Views) -> tuple[list[Any], dict] | None:
    """MARC's ranking of a test output's candidates (grids, best first) and its pooled votes per grid; None without
    the views' lines (their groups are unknown)."""
    cands = list(test.get("candidates") or [])
    order = _vote_order(cands)
    if not order:
        return [], {}
    if not views:
        return None
    mv, ranked = vote_candidates(
        [cands[i]["grid"] for i in order], [cands[i].get("views", []) for i in order], _groups(views)
    )
    return [[list(r) for r in g] for g in ranked], mv.pool


def rankings(test: Mapping[str, Any], views: Views = ()) -> dict[str, list[Any] | None]:
    """Per strategy, the candidates of one test output (its tasks.jsonl entry) best first, as grids in the
    task's frame (lists); None where the strategy cannot be computed (poe without poe scores, marc without the
    views' lines). ``views``: the test output's predictions.jsonl lines (their specs give MARC's groups)."""
    cands = list(test.get("candidates") or [])
    order = _vote_order(cands)
    if not order:
        return {s: [] for s in STRATEGIES}
    grids = [cands[i]["grid"] for i in order]
    out: dict[str, list[Any] | None] = {"votes": grids}
    poe = [(cands[i].get("scores") or {}).get("poe") for i in order]
    if all(p is not None for p in poe):
        po = poe_orders([int(cands[i]["votes"]) for i in order], poe)
        out["poe"] = [grids[k] for k in po["poe"]]
        out["votes+poe"] = [grids[k] for k in po["votes+poe"]]
    else:
        out["poe"] = out["votes+poe"] = None
    if any("marc" in (c.get("ranks") or {}) for c in cands):  # a --score marc prediction: its own ranks
        out["marc"] = [c["grid"] for c in sorted(cands, key=lambda c: (c.get("ranks") or {}).get("marc", 1 << 30))]
    else:
        m = _marc(test, views)
        out["marc"] = None if m is None else m[0]
    return out


def _rank_of(grid: Any, ranked: list[Any] | None) -> int | None:
    if ranked is None:
        return None
    key = as_key(grid)
    return next((k + 1 for k, g in enumerate(ranked) if as_key(g) == key), None)


def candidate_frame(test: Mapping[str, Any], views: Views = ()) -> pd.DataFrame:
    """Every candidate of one test output: shape, right, votes, summed log-prob (the best over its views), poe
    score, MARC's pooled votes, its rank (from 1) under each strategy, and the views that produced it. A grid
    only MARC's majority made is a row with no votes."""
    cands = list(test.get("candidates") or [])
    ranks = rankings(test, views)
    truth = test.get("truth")
    by_view = {int(v["view"]): v for v in views}
    m = _marc(test, views)
    marc_pool = {} if m is None else m[1]
    known = {as_key(c["grid"]) for c in cands}
    extra = [{"grid": g, "votes": 0, "views": []} for g in (ranks.get("marc") or []) if as_key(g) not in known]
    rows = []
    for c in cands + extra:
        scores = c.get("scores") or {}
        rows.append(
            {
                "shape": shape_text(c["grid"]),
                "right": None if truth is None else same_grid(c["grid"], truth),
                "votes": c.get("votes", 0),
                "logprob": c.get("logprob"),
                "poe": scores.get("poe"),
                "marc_votes": None if m is None else marc_pool.get(as_key(c["grid"]), 0),
                **{f"rank_{s}": _rank_of(c["grid"], ranks.get(s)) for s in STRATEGIES},
                "views": ", ".join(f"{v}: {_view_label(by_view.get(int(v)))}" for v in c.get("views", [])),
            }
        )
    cols = ["shape", "right", "votes", "logprob", "poe", "marc_votes", *(f"rank_{s}" for s in STRATEGIES), "views"]
    return pd.DataFrame(rows, columns=cols).sort_values("rank_votes", na_position="last", kind="stable")


def _view_label(v: Mapping[str, Any] | None) -> str:
    if v is None:
        return "?"
    text = describe_spec(v.get("spec"))
    out = v.get("left_out")
    if out is None:
        return text
    if isinstance(out, int):
        return text + f" · without pair {out + 1}"
    return text + " · without pairs " + " and ".join(str(k + 1) for k in out)  # MARC's fallback: two left out


def view_score_frame(test: Mapping[str, Any], views: Views = ()) -> pd.DataFrame:
    """Candidates × views: each candidate's score in each view, in the order of the tasks.jsonl line. With poe
    scores (``view_scores``: its summed log-prob given that view's prompt, for every view), else the summed
    log-prob of the views that produced it (``view_logprobs``; blank elsewhere). Columns ``view k``."""
    cands = list(test.get("candidates") or [])
    n = max([len(c.get("view_scores") or []) for c in cands] + [len(views)] + [0])
    rows = []
    for c in cands:
        row: dict[str, Any] = {"shape": shape_text(c["grid"]), "votes": c.get("votes", 0)}
        vs = c.get("view_scores")
        if vs is not None:
            row.update({f"view {k}": x for k, x in enumerate(vs)})
        else:
            for v, lp in zip(c.get("views", []), c.get("view_logprobs", [])):
                row[f"view {v}"] = lp
        rows.append(row)
    return pd.DataFrame(rows, columns=["shape", "votes", *(f"view {k}" for k in range(n))])


def _solves(ranked: list[Any] | None, truth: Any) -> bool | None:
    if ranked is None:
        return None
    return any(same_grid(g, truth) for g in ranked[:2])


def task_frame(tasks: Sequence[Mapping[str, Any]], views: Mapping[tuple[str, int], Views]) -> pd.DataFrame:
    """One row per task with a known truth: per strategy, whether its attempts 1 and 2 solve every test output
    (None: not computable for this prediction), the oracle (any candidate right on every test output), and
    ``lost`` (the oracle solves it but the prediction's own attempts do not)."""
    rows = []
    for r in tasks:
        tests = [t for t in r.get("tests", []) if t.get("truth") is not None]
        if not tests:
            continue
        row: dict[str, Any] = {"task": r["task"]}
        per = [rankings(t, views.get((r["task"], t["test_index"]), ())) for t in tests]
        for s in STRATEGIES:
            got = [_solves(p[s], t["truth"]) for p, t in zip(per, tests)]
            row[s] = None if any(g is None for g in got) else all(got)
        row[ORACLE] = all(any(same_grid(c["grid"], t["truth"]) for c in t.get("candidates", [])) for t in tests)
        own = all(any(a is not None and same_grid(a, t["truth"]) for a in t.get("attempts", [])) for t in tests)
        row["lost"] = row[ORACLE] and not own
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", *STRATEGIES, ORACLE, "lost"])


def summary_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy and the oracle: tasks solved, of the tasks it could be computed for."""
    rows = []
    for s in (*STRATEGIES, ORACLE):
        col = frame[s].dropna() if s in frame else pd.Series(dtype=bool)
        rows.append(
            {
                "strategy": s,
                "solved": int(col.astype(bool).sum()),
                "of": len(col),
                "share": None if not len(col) else float(col.astype(bool).mean()),
            }
        )
    return pd.DataFrame(rows, columns=["strategy", "solved", "of", "share"])
