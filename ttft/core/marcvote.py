"""MARC's two-level voting (ekinakyurek/marc, ``arclib/voting.py``), learnt from its definition and written anew.

MARC groups the outputs of a test input by the transformation of the view that produced them (its inverter: the
identity for the un-transformed, leave-one-out and reordered views, else the geometric transform), plus one group
``all`` of every output. Level 1, in each group: the three most common outputs (:func:`top3`); where the group has
fewer than three distinct outputs, the missing places are filled with the group's row-wise majority grid, or its
column-wise one (:func:`majority_grid`: per row, the most common row of that width; these can be grids no view
produced). Level 2: the groups' top-3 lists are pooled (each place one vote) and the pool's top 3 are taken the same
way: C1, C2, C3. When C2 and C3 have as many pool votes, the one with more outputs in the identity group is
attempt 2 (MARC: C2 is kept only with strictly more; equal counts give C3). Attempts 1 and 2 are C1 and C2.

Ties, which MARC leaves to Python's set order (and numpy's argsort, which can even return the most common output as
the "second" under a tie), are broken here by a fixed order of the distinct grids: the order of ``order`` given to
:func:`marc_vote` (ttft passes its vote order: most views first, then mean log-prob), grids made by a majority
after all of them. The tie rule is applied only when C3 is a third distinct grid (MARC's can make attempt 2 a copy
of attempt 1). Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: MARC's name of the identity group, and of the group of every output
IDENTITY, ALL = "identity", "all"

Grid = tuple[tuple[int, ...], ...]


def as_key(g: Any) -> Grid:
    """A grid as a hashable tuple of row tuples (MARC's ``to_tuple``)."""
    return tuple(tuple(int(x) for x in row) for row in np.asarray(g))


def _ranked(outputs: Sequence[Hashable], tie: Mapping[Hashable, float]) -> list:
    """The distinct outputs, most common first, ties by ``tie`` (lower first; unknown ones by first appearance)."""
    counts: dict = {}
    for o in outputs:
        counts[o] = counts.get(o, 0) + 1
    first = {o: k for k, o in reversed(list(enumerate(outputs)))}
    big = len(tie) + 1.0
    return sorted(counts, key=lambda o: (-counts[o], tie.get(o, big), first[o]))


def majority_grid(outputs: Sequence[Grid], transpose: bool = False, tie: Mapping[Hashable, float] = {}) -> Grid:
    """MARC's ``row_base_majority_voting``: the most common shape (h, w); then row by row, the most common row
    among the outputs that have that row with width w. ``transpose``: the same over columns (the column-wise
    majority). Ties: the row of the first output in ``tie`` order (then of appearance)."""
    if transpose:
        outputs = [_t(o) for o in outputs]
        tie = {_t(o): v for o, v in tie.items() if isinstance(o, tuple)}
    order = sorted(range(len(outputs)), key=lambda i: (tie.get(outputs[i], len(tie) + 1.0), i))
    outs = [outputs[i] for i in order]
    shapes = [(len(o), len(o[0]) if o else 0) for o in outs]
    h, w = _ranked(shapes, {})[0]
    rows = []
    for r in range(h):
        have = [o[r] for o in outs if len(o) > r and len(o[r]) == w]
        rows.append(_ranked(have, {})[0])
    grid = tuple(rows)
    return _t(grid) if transpose else grid


def _t(g: Grid) -> Grid:
    """The transpose of a grid."""
    return tuple(tuple(col) for col in zip(*g))


def top3(outputs: Sequence[Grid], tie: Mapping[Hashable, float] = {}) -> tuple[Grid, Grid, Grid] | None:
    """MARC's ``get_all_type_of_votingsv2``: the three most common outputs; a place left without a distinct output
    takes the row-wise majority grid when it is not already taken, else the column-wise one (so the three can
    repeat). None for no outputs."""
    if not outputs:
        return None
    u = _ranked(outputs, tie)
    first = u[0]
    second = u[1] if len(u) > 1 else first
    third = u[2] if len(u) > 2 else first
    rows = cols = None
    if second == first or third in (first, second):
        rows, cols = majority_grid(outputs, False, tie), majority_grid(outputs, True, tie)
    if second == first:
        second = rows if rows != first else cols
    if third in (first, second):
        third = rows if rows not in (first, second) else cols
    return first, second, third


@dataclass
class MarcVote:
    """The outcome of :func:`marc_vote`: attempts 1 and 2 (None without outputs), C3, each grid's votes in the
    pooled level-2 list (``pool``), the groups' top-3 lists and the grids that only a majority made."""

    attempt_1: Grid | None
    attempt_2: Grid | None
    third: Grid | None = None
    pool: dict[Grid, int] = field(default_factory=dict)
    groups: dict[str, tuple[Grid, Grid, Grid]] = field(default_factory=dict)
    made: list[Grid] = field(default_factory=list)

    def order(self, known: Sequence[Grid]) -> list[Grid]:
        """Every grid ranked: attempt 1, attempt 2, then by pool votes (ties in ``known`` order, made grids last),
        then the grids of ``known`` the pool never named."""
        tie = {g: k for k, g in enumerate(list(known) + [m for m in self.made if m not in known])}
        head = [g for g in (self.attempt_1, self.attempt_2) if g is not None]
        head = list(dict.fromkeys(head))
        rest = sorted((g for g in self.pool if g not in head), key=lambda g: (-self.pool[g], tie.get(g, len(tie))))
        seen = set(head) | set(rest)
        return head + rest + [g for g in known if g not in seen]


def marc_vote(outputs: Sequence[tuple[str, Grid]], order: Sequence[Grid] = ()) -> MarcVote:
    """MARC's vote over ``(group, grid)`` outputs of one test input (group: the view's transformation; MARC's
    ``inverter``, ``identity`` for none). ``order``: the tie order of the distinct grids (see the module)."""
    tie: dict[Hashable, float] = {g: float(k) for k, g in enumerate(order)}
    by: dict[str, list[Grid]] = {}
    for grp, g in outputs:
        by.setdefault(grp, []).append(g)
    groups = {ALL: [g for _, g in outputs], **by}
    tops = {name: t for name, outs in groups.items() if (t := top3(outs, tie)) is not None}
    pool_list = [g for t in tops.values() for g in t]
    if not pool_list:
        return MarcVote(None, None)
    made = [g for g in dict.fromkeys(pool_list) if g not in tie]
    tie2: dict[Hashable, float] = {**tie, **{g: float(len(tie) + k) for k, g in enumerate(made)}}
    best = top3(pool_list, tie2)
    assert best is not None  # the pool is not empty
    c1, c2, c3 = best
    pool: dict[Grid, int] = {}
    for g in pool_list:
        pool[g] = pool.get(g, 0) + 1
    if c3 not in (c1, c2) and pool.get(c2, 0) == pool.get(c3, 0) and IDENTITY in by:
        ident = by[IDENTITY]
        if not ident.count(c2) > ident.count(c3):
            c2, c3 = c3, c2
    made += [g for g in (c1, c2, c3) if g is not None and g not in tie2]
    return MarcVote(c1, c2, c3, pool, tops, made)


def vote_candidates(
    grids: Sequence, views: Sequence[Sequence[int]], group_of: Mapping[int, str]
) -> tuple[MarcVote, list[Grid]]:
    """MARC's vote over ttft's candidates of one test output: ``grids`` in vote order, ``views[i]`` the views that
    produced grid i (one output each; DFS gives a view several), ``group_of[view]`` its group (the view's geometric
    transform). Returns the vote and every grid ranked (:meth:`MarcVote.order`), made grids included."""
    keys = [as_key(g) for g in grids]
    outputs = [(group_of.get(v, IDENTITY), k) for k, vs in zip(keys, views) for v in vs]
    mv = marc_vote(outputs, keys)
    return mv, mv.order(keys)
