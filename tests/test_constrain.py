"""Grid-constrained decoding: the character automaton of every format, its lift to tokens (the embedded tokenizer, a
character-level chat tokenizer and a byte-level BPE built here with digits split one per token), random logits always
ending in a parseable grid, real grids' text never masked, and the recorded log-probs of the masked distribution."""

import numpy as np
import pytest

from ttft.core.data import load_dataset
from ttft.core.encoding import EncodingConfig, encode_task, parse_output, tokenize_task
from ttft.core.gridtext import FORMATS, grid_to_text, text_to_grid
from ttft.engine.constrain import GridConstraint, GridGrammar, TokenAutomaton, grammar_for, token_strings


@pytest.fixture(scope="module")
def ds():
    return load_dataset("arc-agi-1/evaluation")


@pytest.fixture(scope="module")
def embedded():
    from ttft.core.tokenizer import build_embedded_tokenizer

    return build_embedded_tokenizer()


@pytest.fixture(scope="module")
def chatml():
    from ttft.core.profiles import preview_tokenizer

    return preview_tokenizer("preview-chatml")


@pytest.fixture(scope="module")
def bpe():
    """A byte-level BPE (merges of spaces, brackets, fences and words; digits one per token, as Qwen2.5's) with
    ChatML-style specials and a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from ttft.core.profiles import preview_tokenizer

    rng = np.random.default_rng(0)
    texts = []
    for _ in range(200):
        g = rng.integers(0, 10, tuple(rng.integers(1, 12, 2))).astype(np.uint8)
        texts += [grid_to_text(g, f) for f in FORMATS]
    texts += ["### Output\n\n", "## Example 1\n\n### Input\n\n", "The input-output grids -> #"] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<input>", "<output>"]
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = preview_tokenizer("preview-chatml").chat_template
    return fast


def random_grid(rng, hi=30):
    return rng.integers(0, 10, tuple(rng.integers(1, hi + 1, 2))).astype(np.uint8)


# --------------------------------------------------------------------------- the character automaton


@pytest.mark.parametrize("fmt", FORMATS)
def test_grammar_accepts_every_grid_and_nothing_else(fmt):
    rng = np.random.default_rng(1)
    g = GridGrammar(fmt)
    for _ in range(100):
        text = grid_to_text(random_grid(rng), fmt)
        assert g.accepts(text) and g.accepts(text[:-1])  # the final newline is optional
        for cut in rng.integers(1, len(text) - 2, 5):  # a strict prefix is alive but not a whole grid (but rows)
            s = g.feed(g.start(), text[:cut])
            assert s is not None
    big = grid_to_text(np.zeros((31, 2), np.uint8), fmt)
    wide = grid_to_text(np.zeros((2, 31), np.uint8), fmt)
    ragged = grid_to_text(np.zeros((2, 3), np.uint8), fmt).replace("0", "", 1)
    assert not g.accepts(big) and not g.accepts(wide)
    assert not g.accepts(ragged)
    assert not g.accepts("")


def test_grammar_checks_headers_and_row_numbers():
    g = GridGrammar("shape+rows")
    assert g.accepts("shape: 2x3\n1 012\n2 340\n")
    assert not g.accepts("shape: 2x3\n1 012\n")  # fewer rows than the header says
    assert g.feed(g.start(), "shape: 2x3\n1 012\n3") is None  # row numbered 3
    assert g.feed(g.start(), "shape: 2x3\n1 0123") is None  # wider than the header
    assert g.feed(g.start(), "shape: 31") is None and g.feed(g.start(), "shape: 0") is None
    a = GridGrammar("arc24")
    assert a.accepts(" shape: 1x2\n1 01\n```", prefix="```grid")
    assert not a.accepts(" shape: 1x2\n1 01\n", prefix="```grid")  # the fence must close


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_walks_parse(fmt):
    """Random characters among those allowed, ending at random where allowed: always a grid."""
    rng = np.random.default_rng(2)
    g = GridGrammar(fmt)
    chars = sorted(g.alphabet)
    for _ in range(100):
        s, text = g.start(), ""
        while True:
            opts = [c for c in chars if g.step(s, c) is not None]
            if g.accepting(s) and (not opts or rng.random() < 0.05):
                break
            assert opts, (s, text[-30:])
            c = opts[rng.integers(len(opts))]
            text, s = text + c, g.step(s, c)
        assert text_to_grid(text, fmt).ok, text


# --------------------------------------------------------------------------- tokens

#: (tokenizer fixture, format, prompt)
CASES = [("embedded", f, "markers") for f in ("minimal", "shape+rows", "separated")] + [
    (t, f, p)
    for t in ("chatml", "bpe")
    for f, p in [
        ("minimal", "markers"),
        ("numpy", "markers"),
        ("arc24", "markers"),
        ("shape+rows", "arc24"),
        ("arc24", "arc24"),
        ("numpy", "marc"),
        ("separated", "marc"),
    ]
]


def _enc(fmt, prompt):
    return EncodingConfig(format=fmt, prompt=prompt, chat_template=prompt != "markers")


def _stops(tok):
    ids = [tok.eos_token_id] + [tok.convert_tokens_to_ids(t) for t in ("<input>", "<output>") if t in tok.get_vocab()]
    return [int(i) for i in ids if i is not None]


def _automaton(tok, enc):
    g, prefix = grammar_for(enc)
    return TokenAutomaton(g, token_strings(tok), _stops(tok), len(tok), prefix)


@pytest.mark.parametrize("which,fmt,prompt", CASES)
def test_random_logits_always_give_a_grid(which, fmt, prompt, request):
    """A fake model: random logits every step, masked by the constraint, then sampled: every row ends (a stop token)
    within a 30x30 grid's budget, and its text parses as a grid in the format."""
    import torch

    tok = request.getfixturevalue(which)
    enc = _enc(fmt, prompt)
    a = _automaton(tok, enc)
    n, vocab = 24, len(tok)
    proc = GridConstraint(a, n)
    gen = torch.Generator().manual_seed(3)
    ids = torch.zeros((n, 1), dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    budget = 3 * len(grid_to_text(np.zeros((30, 30), np.uint8), fmt))
    for _ in range(budget):
        scores = torch.randn((n, vocab), generator=gen) * 4
        scores[:, a.stops] -= 3.0  # long grids too
        masked = proc(ids, scores)
        nxt = torch.multinomial(torch.softmax(masked, -1), 1, generator=gen).squeeze(1)
        nxt = torch.where(done, torch.zeros_like(nxt), nxt)
        done |= torch.isin(nxt, torch.as_tensor(a.stops))
        ids = torch.cat([ids, nxt[:, None]], 1)
        if done.all():
            break
    assert done.all()
    for row in ids[:, 1:].tolist():
        k = next(i for i, t in enumerate(row) if t in a.stops)
        text = tok.decode(row[: k + 1], skip_special_tokens=False)
        res = parse_output(text, enc, tok)
        assert res.ok, (text[:80], res.reason)


@pytest.mark.parametrize("which,fmt,prompt", CASES)
def test_real_grids_are_never_masked(which, fmt, prompt, request, ds):
    """The tokens of a real test output (the training text after the generation prompt, tokenised on its own) are
    allowed at every step, and so is the end of sequence after them."""
    tok = request.getfixturevalue(which)
    enc = _enc(fmt, prompt)
    a = _automaton(tok, enc)
    tok_arg = None if which == "embedded" else tok
    if tok_arg is None:
        tok_arg = tok  # the same text: encode_task writes </s> for both
    checked = 0
    for task in list(ds)[:40]:
        if max(max(p.input.shape + p.output.shape) for p in task.train) > 12:
            continue
        full = encode_task(task, enc, tok_arg, answer=True).text
        head = encode_task(task, enc, tok_arg, answer=False).text
        assert full.startswith(head)
        answer = tok(full[len(head) :], add_special_tokens=False)["input_ids"]
        s = a.start
        for t in answer:
            if t in a.stops or tok.convert_ids_to_tokens(t) in ("<|im_end|>",):
                assert t in a.allowed[s], "the end of sequence is masked after a whole grid"
                break
            assert t in a.allowed[s], (task.id, tok.decode(answer)[:60], t)
            s = a.next(s, t)
        else:
            pytest.fail("the answer has no end of sequence")
        checked += 1
    assert checked >= 10


def test_generate_records_the_masked_distribution(tiny_model, ds):
    """Constrained greedy generation on a tiny random model: every output is a grid, and the recorded log-probs
    are log_softmax of the masked logits (recomputed from one forward pass over prompt + output)."""
    import torch

    from ttft.engine.generate import generate, load_predictor
    from ttft.engine.models import ModelConfig
    from ttft.engine.sources import Source
    from ttft.engine.views import max_output_tokens

    enc = EncodingConfig()
    pred = load_predictor(Source("base", ModelConfig(base_model=tiny_model), enc), "cpu", "float32")
    tasks = [t for t in ds if t.stats().tokens <= 300][:3]
    prompts = [tokenize_task(t, enc, answer=False).input_ids for t in tasks]
    budget = max_output_tokens(enc.format, pred.count_tokens)  # a 30x30 grid's
    outs = generate(pred, prompts, [budget] * len(prompts), constrain=True)
    a = pred.automaton()
    for p, o in zip(prompts, outs):
        assert parse_output(o.text, enc, pred.tokenizer).ok
        ids = torch.as_tensor(np.concatenate([p, o.tokens])[None])
        with torch.no_grad():
            logits = pred.model(input_ids=ids).logits[0, len(p) - 1 : -1].float()
        s, want = a.start, []
        for step, t in enumerate(o.tokens):
            masked = logits[step] + a.bias(logits.device)[s]
            want.append(float(torch.log_softmax(masked, -1)[t]))
            s = a.next(s, t) if t not in a.stops else s
        np.testing.assert_allclose(o.logprobs, want, atol=1e-4)
