"""MARC's two-level voting (ttft.core.marcvote, --score marc) against its definition: hand-built candidates whose
outcome is worked out by hand in the comments, and random ones against a literal restatement of MARC's
arclib/voting.py (its ties left to a random set order: only the cases every order agrees on are compared)."""

import numpy as np
import pytest

from ttft.core.marcvote import as_key, majority_grid, marc_vote, top3, vote_candidates
from ttft.core.voting import vote
from ttft.engine.scoring import marc_rank

# distinct shapes: a majority grid is then the group's most common grid
X, B, C, D = ((1,),), ((2, 2),), ((3,), (3,)), ((4, 4), (4, 4))


def test_top3_fills_missing_places_with_the_majority():
    assert top3([X]) == (X, X, X)
    assert top3([B, X, X]) == (X, B, X)  # two distinct: the third place is the row-wise majority, X
    assert top3([C, X, B, X, C, D], tie={X: 0, B: 1, C: 2}) == (X, C, B)  # counts 2, 2, 1, 1: ties by ``tie``
    assert top3([]) is None


def test_majority_grids_can_be_new_grids():
    p, q, r, s = ((1, 1), (0, 0)), ((5, 5), (2, 2)), ((1, 1), (3, 3)), ((6, 6), (2, 2))
    assert majority_grid([p, q, r, s]) == ((1, 1), (2, 2))  # row 0: (1, 1) twice; row 1: (2, 2) twice
    t = [tuple(zip(*g)) for g in (p, q, r, s)]
    assert majority_grid(t, transpose=True) == ((1, 2), (1, 2))  # the same over columns
    # the most common shape decides the rows; rows of other heights but that width still vote
    assert majority_grid([((7, 7),), ((7, 7), (8, 8)), ((9, 9), (8, 8))]) == ((7, 7), (8, 8))


def test_groups_of_one_view_outweigh_a_flat_majority():
    """identity: A four times; rot90, flip_h, transpose: B once each. Flat votes: A 4, B 3. MARC: group all
    (A, B, A), identity (A, A, A), the three others (B, B, B) each: pooled A 5, B 10, so B is attempt 1."""
    outs = [("identity", X)] * 4 + [("rot90", B), ("flip_h", B), ("transpose", B)]
    mv = marc_vote(outs, [X, B])
    assert (mv.attempt_1, mv.attempt_2) == (B, X)
    assert mv.pool == {X: 5, B: 10}
    assert mv.groups["all"] == (X, B, X)


def test_tied_second_and_third_go_to_the_one_the_identity_views_made_more_often():
    """identity [X, X, C] -> (X, C, X); rot90 [B, X] -> (X, B, X) (a tie, X first in the order); all
    [X, X, C, B, X] -> (X, B, C). Pool: X 5, B 2, C 2: C2 = B, C3 = C tie, and C has more identity outputs (1 vs 0),
    so attempt 2 is C although B comes first in the vote order."""
    outs = [("identity", X), ("identity", X), ("identity", C), ("rot90", B), ("rot90", X)]
    mv = marc_vote(outs, [X, B, C])
    assert mv.pool == {X: 5, B: 2, C: 2}
    assert (mv.attempt_1, mv.attempt_2, mv.third) == (X, C, B)
    # MARC keeps C2 only with strictly more identity outputs: identity [X, X, B, C] -> (X, B, C), rot90 [X] ->
    # (X, X, X), all -> (X, B, C): B 2, C 2, one identity output each, so C3 (C) still wins
    same = [("identity", X), ("identity", X), ("identity", B), ("identity", C), ("rot90", X)]
    mv = marc_vote(same, [X, B, C])
    assert mv.pool == {X: 5, B: 2, C: 2} and mv.attempt_2 == C
    # without an identity group the rule does not apply (MARC's KeyError, caught)
    mv = marc_vote([(g if g != "identity" else "flip_v", x) for g, x in outs], [X, B, C])
    assert mv.attempt_2 == B


# --------------------------------------------------------------------------- MARC's code, restated literally


def _set_list(xs, rng):
    u = list(dict.fromkeys(xs))
    rng.shuffle(u)  # Python's set order: arbitrary
    return u


def _ref_rows(outputs, rng, transpose=False):
    if transpose:
        outputs = [tuple(zip(*o)) for o in outputs]
    shapes = [np.array(o).shape for o in outputs]
    shape = max(_set_list(shapes, rng), key=shapes.count)
    rows = []
    for r in range(shape[0]):
        have = [o[r] for o in outputs if len(o) > r and len(o[r]) == shape[1]]
        rows.append(max(_set_list(have, rng), key=have.count))
    out = tuple(rows)
    return tuple(zip(*out)) if transpose else out


def _ref_top3(outputs, rng):
    u = _set_list(outputs, rng)
    counts = [outputs.count(o) for o in u]
    most = u[int(np.argmax(counts))]
    second = third = most
    rows, cols = _ref_rows(outputs, rng), _ref_rows(outputs, rng, True)
    if len(u) > 2:
        second, third = u[np.argsort(counts)[-2]], u[np.argsort(counts)[-3]]
    elif len(u) > 1:
        second = u[np.argsort(counts)[-2]]
    if second == most:
        second = rows if rows != most else cols
    if third in (most, second):
        third = rows if rows not in (most, second) else cols
    return most, second, third


def _ref_vote(outs, rng):
    by = {}
    for g, o in outs:
        by.setdefault(g, []).append(o)
    by["all"] = [o for g in by for o in by[g]]
    cands = []
    for key in ["all", "identity", "transpose", "flip_v", "flip_h", "rot180", "rot90"]:
        if key in by:
            cands += _ref_top3(by[key], rng)
    c1, c2, c3 = _ref_top3(cands, rng)
    if cands.count(c2) == cands.count(c3) and "identity" in by:
        if by["identity"].count(c2) > by["identity"].count(c3):
            c3 = c2
        else:
            c2 = c3
    return c1, c2


def test_random_candidates_agree_with_marcs_code_wherever_its_ties_do_not_matter():
    rng = np.random.default_rng(0)
    pool = [((1, 2), (3, 4)), ((1, 2), (3, 5)), ((1, 2), (0, 5)), ((9, 2), (3, 4)), ((1, 2),), ((1,), (2,))]
    groups = ["identity", "identity", "transpose", "flip_v", "flip_h", "rot180", "rot90"]
    compared = differ = 0
    for _ in range(400):
        n = int(rng.integers(1, 9))
        outs = [(groups[rng.integers(len(groups))], pool[rng.integers(len(pool))]) for _ in range(n)]
        results = {_ref_vote(outs, np.random.default_rng(s)) for s in range(12)}
        if len(results) != 1:
            continue  # MARC's answer depends on its set order here
        (c1, c2), order = results.pop(), list(dict.fromkeys(o for _, o in outs))
        mv = marc_vote(outs, order)
        compared += 1
        assert mv.attempt_1 == c1, outs
        if c2 == c1 and len(order) > 1:  # MARC repeats attempt 1; ttft gives a distinct attempt 2
            differ += 1
            assert mv.attempt_2 != c1
        else:
            assert mv.attempt_2 == c2, outs
    assert compared > 100


def test_marc_rank_of_ttft_candidates():
    """ttft's candidates (vote order) with views in groups by geometric transform: the case of
    test_groups_of_one_view_outweigh_a_flat_majority through the engine's ranking."""
    a, b = np.array(X, dtype=np.uint8), np.array(B, dtype=np.uint8)
    cands = vote([a, a, a, a, b, b, b], [-0.1] * 7)
    assert cands[0].votes == 4
    groups = {0: "identity", 1: "identity", 2: "identity", 3: "identity", 4: "rot90", 5: "flip_h", 6: "transpose"}
    ranked = marc_rank(cands, groups)
    assert [as_key(c.grid) for c in ranked] == [B, X]
    assert [c.extra["ranks"] for c in ranked] == [{"votes": 1, "marc": 0}, {"votes": 0, "marc": 1}]
    assert ranked[0].extra["score"] == 10 and ranked[0].extra["scores"] == {"votes": 3, "marc": 10}
    mv, order = vote_candidates([c.grid for c in cands], [c.views for c in cands], groups)
    assert order == [B, X] and mv.attempt_1 == B


@pytest.mark.parametrize("n", [0, 1])
def test_no_or_one_output(n):
    mv = marc_vote([("identity", X)] * n, [X])
    assert (mv.attempt_1, mv.attempt_2) == ((X, X) if n else (None, None))
