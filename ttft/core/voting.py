"""Voting over the candidate grids of one test output: candidates with votes, attempts 1 and 2."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttft.core import metrics as M


@dataclass
class Candidate:
    """A distinct predicted grid of one test output: how many views voted for it, and their mean log-prob."""

    grid: np.ndarray
    votes: int
    mean_logprob: float | None
    views: list[int] = field(default_factory=list)
    #: per entry of ``views``, the whole output's summed log-probability in that view (None where unknown)
    view_logprobs: list[float | None] = field(default_factory=list)
    #: what a scoring strategy adds (:mod:`ttft.engine.scoring`): its ``score``, per-view scores and ranks
    extra: dict = field(default_factory=dict)

    @property
    def logprob(self) -> float | None:
        """The best summed log-probability of the output over the views that produced it."""
        known = [v for v in self.view_logprobs if v is not None]
        return max(known) if known else None

    def to_json(self) -> dict:
        return {
            "grid": self.grid.tolist(),
            "votes": self.votes,
            "mean_logprob": self.mean_logprob,
            "views": list(self.views),
            "logprob": self.logprob,
            "view_logprobs": list(self.view_logprobs),
            **self.extra,
        }


def vote(
    grids: Sequence[Any],
    logprobs: Sequence[float | None] | None = None,
    views: Sequence[int] | None = None,
    seq_logprobs: Sequence[float | None] | None = None,
) -> list[Candidate]:
    """Group identical grids (``None`` = unanswered, skipped) and rank them: most votes first, ties broken by the
    higher mean log-probability (a candidate without log-probs ranks below one with), then by the first view.
    ``views``: the view of each grid (default: its index; DFS gives a view several grids, each one vote);
    ``seq_logprobs``: each grid's summed log-probability (recorded per view in ``view_logprobs``)."""
    logprobs = list(logprobs) if logprobs is not None else [None] * len(grids)
    views = list(views) if views is not None else list(range(len(grids)))
    seq = list(seq_logprobs) if seq_logprobs is not None else [None] * len(grids)
    groups: dict[tuple, Candidate] = {}
    lps: dict[tuple, list[float]] = {}
    for k, g, lp, slp in zip(views, grids, logprobs, seq):
        a = M.as_grid(g)
        if a is None:
            continue
        key = (a.shape, a.tobytes())
        if key not in groups:
            groups[key] = Candidate(a, 0, None, [], [])
            lps[key] = []
        c = groups[key]
        c.votes += 1
        c.views.append(k)
        c.view_logprobs.append(None if slp is None or not math.isfinite(slp) else float(slp))
        if lp is not None and math.isfinite(lp):
            lps[key].append(float(lp))
    for key, c in groups.items():
        c.mean_logprob = float(np.mean(lps[key])) if lps[key] else None
    return sorted(
        groups.values(),
        key=lambda c: (-c.votes, -(c.mean_logprob if c.mean_logprob is not None else -math.inf), c.views[0]),
    )


def attempts_of(cands: Sequence[Candidate]) -> list[np.ndarray | None]:
    """Attempt 1 and 2 (``None`` where there are fewer candidates)."""
    return [cands[i].grid if i < len(cands) else None for i in range(2)]


def poe_orders(votes: Sequence[int], poe: Sequence[float | None]) -> dict[str, list[int]]:
    """The candidates' order (indices into the vote order) under votes, poe (highest sum first) and votes+poe (most
    votes, ties by poe); a candidate without a poe score ranks below every one with, then in vote order."""
    n = len(votes)

    def p(i: int) -> float:
        x = poe[i]
        return -math.inf if x is None else x

    return {
        "votes": list(range(n)),
        "poe": sorted(range(n), key=lambda i: (-p(i), i)),
        "votes+poe": sorted(range(n), key=lambda i: (-votes[i], -p(i), i)),
    }
