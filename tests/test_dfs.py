"""DFS sampling: exactly the sequences whose probability is at least P (against brute-force enumeration on a tiny
model with a tiny vocabulary), most probable first, and grids under the constraint."""

import itertools
import math

import numpy as np
import pytest

from ttft.engine.dfs import dfs
from ttft.engine.generate import Predictor
from ttft.engine.models import ModelConfig
from ttft.engine.sources import Source

VOCAB, STOP, MAX_NEW = 4, 3, 6


class _Tok:
    def decode(self, ids, skip_special_tokens=False):
        return " ".join(map(str, ids))


@pytest.fixture(scope="module")
def small():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(4)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)  # peaked enough that some sequences pass the cut-off
    from ttft.core.encoding import EncodingConfig

    return Predictor(model, _Tok(), "cpu", Source("base", ModelConfig(), EncodingConfig()), [STOP], 0)


def brute_force(pred, prompt, min_prob):
    """Every sequence of non-stop tokens followed by the stop token, within MAX_NEW tokens, with its probability."""
    import torch

    out = {}
    for n in range(MAX_NEW):
        for body in itertools.product([t for t in range(VOCAB) if t != STOP], repeat=n):
            seq = list(body) + [STOP]
            ids = torch.as_tensor([list(prompt) + seq])
            with torch.no_grad():
                lp = torch.log_softmax(pred.model(input_ids=ids).logits[0].float(), -1)
            total = sum(float(lp[len(prompt) - 1 + i, t]) for i, t in enumerate(seq))
            if total >= math.log(min_prob):
                out[tuple(seq)] = total
    return out


@pytest.mark.parametrize("prompt,min_prob", [([1, 2, 0], 0.05), ([2, 2], 0.01), ([0], 0.02)])
def test_dfs_finds_exactly_the_sequences_above_p(small, prompt, min_prob):
    want = brute_force(small, prompt, min_prob)
    got, cut_short = dfs(small, np.array(prompt), MAX_NEW, min_prob)
    assert not cut_short
    assert {tuple(g.tokens): g.logprob for g in got}.keys() == want.keys()
    assert len(want) >= 2  # the test checks something: more than one output passes
    for g in got:
        assert g.logprob == pytest.approx(want[tuple(g.tokens)], abs=1e-4)
        assert len(g.logprobs) == len(g.tokens)
    assert [g.logprob for g in got] == sorted((g.logprob for g in got), reverse=True)


def test_dfs_under_the_constraint_gives_grids(tiny_model):
    """On a random model a long grid's tree is huge (every near-tie lives for most of the remaining length): the
    search is cut after a few outputs or steps; the first output is the constrained greedy one, all are grids."""
    from ttft.core.data import load_dataset
    from ttft.core.encoding import EncodingConfig, parse_output, tokenize_task
    from ttft.engine.generate import generate, load_predictor

    enc = EncodingConfig()
    pred = load_predictor(Source("base", ModelConfig(base_model=tiny_model), enc), "cpu", "float32")
    import torch

    with torch.no_grad():  # peaked logits (the final norm scales them): a random model is near uniform
        pred.model.model.norm.weight.mul_(30.0)
    task = next(t for t in load_dataset("arc-agi-1/evaluation") if t.stats().tokens <= 200)
    prompt = tokenize_task(task, enc, answer=False).input_ids
    greedy = generate(pred, [prompt], [960], constrain=True)[0]
    cut = greedy.logprob - math.log(2)  # half the greedy output's probability
    got, cut_short = dfs(pred, prompt, 960, 0.5, constrain=True, min_logprob=cut, max_outputs=3, max_steps=2500)
    assert got and got[0].tokens == greedy.tokens
    assert got[0].logprob == pytest.approx(greedy.logprob, abs=1e-3)
    for g in got:
        assert parse_output(g.text, enc, pred.tokenizer).ok and g.logprob >= cut
