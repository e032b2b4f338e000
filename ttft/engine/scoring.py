"""Augmentation scoring (the ARChitects' "product of experts"): every distinct candidate of a test output re-scored
under every view's augmentation, and the candidates ranked by a choice of score.

A candidate (a grid in the task's own frame) is mapped into a view's frame by writing it as the task's test output
and applying the view's augmentation (:func:`ttft.core.augment.apply_task`, the same mapping the view's prompt was
made with); its score in that view is the summed log-probability of its output tokens (the answer text after the
generation prompt, up to and including the end of sequence) given that view's prompt, in the distribution decoded
from (after the grid mask when constraining). The candidates of one view go through the model together, in one
batched forward pass. Scores (``--score``):

* ``votes``: most votes first, ties by the mean token log-prob (:func:`ttft.core.voting.vote`, as before);
* ``poe``: the sum of the per-view scores (a product of the views' probabilities), highest first;
* ``votes+poe``: most votes first, ties by the poe score;
* ``marc``: MARC's two-level voting (:mod:`ttft.core.marcvote`: the top 3 within each transformation group of views,
  then across the groups); no re-scoring. A grid that only MARC's row- or column-wise majority made joins the
  candidates with no votes (``made_by``).

With poe and votes+poe every candidate gets ``score`` (the chosen one's: the poe sum), ``view_scores`` (one per view,
None where its prompt was too long), ``scores`` (``{"votes", "poe"}``) and ``ranks`` (its rank, from 0, under each
strategy); with marc ``score`` and ``scores["marc"]`` are its votes in MARC's pooled level-2 list and ``ranks`` has
``votes`` and ``marc``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence

import numpy as np

from ttft.core.augment import AugmentSpec
from ttft.core.data import Pair, Task
from ttft.core.encoding import encode_task
from ttft.core.marcvote import as_key, vote_candidates
from ttft.core.voting import Candidate, poe_orders
from ttft.engine.generate import Predictor
from ttft.engine.predict_config import SCORES  # noqa: F401 (the choices, declared with the option)
from ttft.engine.views import LeftOut, View, view_task


def _answer_ids(
    pred: Predictor, task: Task, test_index: int, grid: np.ndarray, spec: AugmentSpec, left_out: LeftOut = None
) -> list[int]:
    """The tokens a view's model writes for ``grid`` (the task's frame) as the test output, up to the stop."""
    from ttft.core.tokenizer import fast_encoder, is_embedded

    test = list(task.test)
    test[test_index] = Pair(test[test_index].input, np.asarray(grid, dtype=np.uint8))
    vt = view_task(dataclasses.replace(task, test=tuple(test)), View(spec, left_out))
    tok = None if is_embedded(pred.tokenizer) else pred.tokenizer
    enc = pred.source.encoding
    full = encode_task(vt, enc, tok, test_index, answer=True).text
    head = encode_task(vt, enc, tok, test_index, answer=False).text
    text = full[len(os.path.commonprefix([full, head])) :]
    ids = [
        int(i)
        for i in (fast_encoder().encode(text) if tok is None else tok(text, add_special_tokens=False)["input_ids"])
    ]
    stops = set(pred.stop_ids)
    for k, t in enumerate(ids):
        if t in stops:
            return ids[: k + 1]
    return ids


def view_scores(
    pred: Predictor,
    task: Task,
    test_index: int,
    grids: Sequence[np.ndarray],
    specs: Sequence[AugmentSpec],
    prompts: Sequence[np.ndarray | None],
    constrain: bool,
    left_out: Sequence[LeftOut] | None = None,
) -> np.ndarray:
    """``(candidates, views)`` summed log-probs of each candidate given each view's prompt (NaN where the view has
    no prompt: too long); ``left_out[k]``: the train pair(s) view k leaves out (``views_from leave-one-out``, marc)."""
    import torch

    a = pred.automaton() if constrain else None
    out = np.full((len(grids), len(specs)), np.nan)
    drops = list(left_out) if left_out is not None else [None] * len(specs)
    for k, (spec, prompt, drop) in enumerate(zip(specs, prompts, drops)):
        if prompt is None or not len(grids):
            continue
        answers = [_answer_ids(pred, task, test_index, g, spec, drop) for g in grids]
        p = [int(t) for t in prompt]
        seqs = [p + ans for ans in answers]
        L = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), L), pred.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), L), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.as_tensor(s)
            mask[i, : len(s)] = 1
        with torch.no_grad():
            logits = pred.model(input_ids=ids.to(pred.device), attention_mask=mask.to(pred.device)).logits
        for i, ans in enumerate(answers):
            lg = logits[i, len(p) - 1 : len(p) - 1 + len(ans)].float()
            total, state = 0.0, a.start if a is not None else None
            for j, t in enumerate(ans):
                row = lg[j] if a is None else lg[j] + a.bias(lg.device)[state]
                total += float(torch.log_softmax(row, -1)[t])
                if a is not None and t not in a.stops:
                    state = a.next(state, t)
                    if state is None:
                        total = -math.inf
                        break
            out[i, k] = total
    return out


def rank(cands: list[Candidate], scores: np.ndarray, how: str) -> list[Candidate]:
    """Attach the scores to ``cands`` (in vote order) and return them ranked by ``how``."""
    poe = [float(np.nansum(r)) if (~np.isnan(r)).any() else None for r in scores]
    for c, r, s in zip(cands, scores, poe):
        c.extra.update(view_scores=[None if np.isnan(x) else float(x) for x in r], scores={"votes": c.votes, "poe": s})
    orders = poe_orders([c.votes for c in cands], poe)
    for name, order in orders.items():
        for r_, i in enumerate(order):
            cands[i].extra.setdefault("ranks", {})[name] = r_
    for i, c in enumerate(cands):
        c.extra["score"] = c.votes if how == "votes" else poe[i]
    return [cands[i] for i in orders[how]]


def marc_rank(cands: list[Candidate], group_of: dict[int, str]) -> list[Candidate]:
    """``cands`` (in vote order) ranked by MARC's two-level voting, ``group_of[view]`` the transformation group of
    each view; grids only MARC's majorities made are added (votes 0, ``made_by``)."""
    mv, order = vote_candidates([c.grid for c in cands], [c.views for c in cands], group_of)
    by = {as_key(c.grid): c for c in cands}
    for k, c in enumerate(cands):
        c.extra.setdefault("ranks", {})["votes"] = k
    out = []
    for r, g in enumerate(order):
        c = by.get(g)
        if c is None:
            c = Candidate(np.asarray(g, dtype=np.uint8), 0, None, [], [], {"made_by": "majority"})
            c.extra["ranks"] = {"votes": None}
        n = mv.pool.get(g, 0)
        c.extra["score"] = n
        c.extra.setdefault("scores", {}).update(votes=c.votes, marc=n)
        c.extra["ranks"]["marc"] = r
        out.append(c)
    return out
