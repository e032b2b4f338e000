"""Augmentation scoring (poe): per-view scores and the ranking of each strategy against hand-computed scores of a
fake bigram model (the logits at a position depend only on its token, so a sequence's log-prob is a sum over a
table)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ttft.core.augment import apply_task
from ttft.core.data import Pair, load_dataset
from ttft.core.encoding import EncodingConfig, encode_task, tokenize_task
from ttft.core.tokenizer import build_embedded_tokenizer, fast_encoder
from ttft.core.voting import vote
from ttft.engine.generate import Predictor
from ttft.engine.models import ModelConfig
from ttft.engine.predict_config import PredictConfig
from ttft.engine.scoring import rank, view_scores
from ttft.engine.sources import Source
from ttft.engine.views import view_specs

V = 45


class Bigram:
    """logits[b, t] = TABLE[input_ids[b, t]]."""

    def __init__(self, seed=0):
        import torch

        self.table = torch.as_tensor(np.random.default_rng(seed).normal(0, 2, (V, V)), dtype=torch.float32)
        self.config = SimpleNamespace(vocab_size=V)
        self.device = "cpu"

    def __call__(self, input_ids, attention_mask=None, **kw):
        return SimpleNamespace(logits=self.table[input_ids])


def hand_logprob(table: np.ndarray, prompt: list[int], answer: list[int]) -> float:
    lsm = table - np.log(np.exp(table).sum(1, keepdims=True))
    seq = prompt + answer
    return float(sum(lsm[seq[len(prompt) - 1 + j], t] for j, t in enumerate(answer)))


@pytest.fixture(scope="module")
def setup():
    tok = build_embedded_tokenizer()
    model = Bigram()
    pred = Predictor(model, tok, "cpu", Source("base", ModelConfig(), EncodingConfig()), [2, 4, 5], 0)
    task = next(t for t in load_dataset("arc-agi-1/evaluation") if t.stats().tokens <= 400)
    specs = view_specs(task, PredictConfig(base_model="default", dataset="x", views=3))
    prompts = [tokenize_task(apply_task(task, s), EncodingConfig(), answer=False).input_ids for s in specs]
    return pred, task, specs, prompts


def test_poe_scores_and_ranks_match_hand_computation(setup):
    pred, task, specs, prompts = setup
    truth = task.test[0].output
    other = truth.copy()
    other[0, 0] = (other[0, 0] + 1) % 10
    small = truth[:1].copy()
    # votes: other twice, truth and small once each
    cands = vote([other, truth, other, small], [-0.1, -0.5, -0.2, -0.3])
    assert [c.votes for c in cands] == [2, 1, 1]
    m = view_scores(pred, task, 0, [c.grid for c in cands], specs, prompts, constrain=False)
    table = pred.model.table.numpy()
    want = np.zeros_like(m)
    for i, c in enumerate(cands):
        for k, spec in enumerate(specs):
            t2 = task.__class__(task.id, task.train, (Pair(task.test[0].input, c.grid),) + task.test[1:])
            vt = apply_task(t2, spec)
            full = encode_task(vt, EncodingConfig(), None, 0, answer=True).text
            head = encode_task(vt, EncodingConfig(), None, 0, answer=False).text
            ans = fast_encoder().encode(full[len(head) :]).tolist()
            assert ans[-1] == 2  # up to and including </s>
            want[i, k] = hand_logprob(table, prompts[k].tolist(), ans)
    np.testing.assert_allclose(m, want, rtol=1e-4)
    poe = want.sum(1)
    order = sorted(range(3), key=lambda i: -poe[i])
    ranked = rank(cands, m, "poe")
    assert [c.grid.tobytes() for c in ranked] == [cands[i].grid.tobytes() for i in order]
    for i, c in enumerate(cands):
        assert c.extra["scores"]["poe"] == pytest.approx(poe[i], rel=1e-4)
        assert c.extra["score"] == pytest.approx(poe[i], rel=1e-4)
        assert c.extra["view_scores"] == pytest.approx(list(want[i]), rel=1e-4)
        assert c.extra["ranks"]["poe"] == order.index(i)
        assert c.extra["ranks"]["votes"] == i
    # votes+poe: the two-vote candidate first, then the one-vote pair by poe
    vp = rank(cands, m, "votes+poe")
    assert vp[0] is cands[0]
    assert [vp[1], vp[2]] == sorted(cands[1:], key=lambda c: -c.extra["scores"]["poe"])
    assert rank(cands, m, "votes") == cands and cands[0].extra["score"] == 2
    json = cands[0].to_json()
    assert {"score", "view_scores", "scores", "ranks", "logprob", "view_logprobs"} <= json.keys()
    assert not math.isnan(json["score"])


def test_a_view_without_prompt_is_skipped(setup):
    pred, task, specs, prompts = setup
    cands = vote([task.test[0].output])
    m = view_scores(pred, task, 0, [cands[0].grid], specs, [prompts[0], None, prompts[2]], constrain=True)
    assert np.isnan(m[0, 1]) and np.isfinite(m[0, [0, 2]]).all()
    rank(cands, m, "poe")
    assert cands[0].extra["view_scores"][1] is None
    assert cands[0].extra["score"] == pytest.approx(m[0, 0] + m[0, 2])


def test_leave_one_out_views_score_against_their_own_prompts(setup):
    """A view that leaves a train pair out scores a candidate given its own prompt (the task without that pair)."""
    from ttft.engine.views import View, view_task

    pred, task, specs, _ = setup
    drops = [None, 1, 0]
    prompts = [
        tokenize_task(view_task(task, View(s, d)), EncodingConfig(), answer=False).input_ids
        for s, d in zip(specs, drops)
    ]
    grid = task.test[0].output
    m = view_scores(pred, task, 0, [grid], specs, prompts, constrain=False, left_out=drops)
    table = pred.model.table.numpy()
    for k, (s, d) in enumerate(zip(specs, drops)):
        vt = view_task(task, View(s, d))
        full = encode_task(vt, EncodingConfig(), None, 0, answer=True).text
        head = encode_task(vt, EncodingConfig(), None, 0, answer=False).text
        ans = fast_encoder().encode(full[len(head) :]).tolist()
        assert m[0, k] == pytest.approx(hand_logprob(table, prompts[k].tolist(), ans), rel=1e-4)
    assert len(prompts[1]) < len(prompts[0])  # the pair is really gone from the prompt
