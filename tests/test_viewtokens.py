"""Grid token ids from shape templates (ttft/core/viewtokens.py) and the unchecked spec draw (ttft/core/augment.py)
that the sample stream's fast path uses; the streams themselves are compared in test_samples_exact.py."""

import numpy as np
import pytest

from ttft.core.augment import AugmentOptions, AugmentSpec, apply_task, draw_spec, random_spec
from ttft.core.data import Pair, Task
from ttft.core.encoding import FORMATS, EncodingConfig, tokenize_task
from ttft.core.gridtext import grid_to_text
from ttft.core.tokenizer import VOCAB, fast_encoder, load_tokenizer
from ttft.core.viewtokens import ViewEncoder, grid_ids


@pytest.mark.parametrize("fmt", FORMATS)
def test_grid_ids_from_a_template_are_the_ids_of_the_grids_text_for_every_shape(fmt):
    rng = np.random.default_rng(0)
    enc = fast_encoder()
    ids_of = VOCAB["0"] + np.asarray(rng.permutation(10), dtype=np.int64)
    for h in range(1, 31):
        for w in range(1, 31):
            g = rng.integers(0, 10, (h, w)).astype(np.uint8)
            assert grid_ids(g, fmt).tolist() == enc.encode(grid_to_text(g, fmt)).tolist(), (h, w)
            # a colour table and a non-contiguous view: the text of the recoloured, transposed grid
            want = enc.encode(grid_to_text((ids_of - VOCAB["0"])[g.T].astype(np.uint8), fmt))
            assert grid_ids(g.T, fmt, ids_of).tolist() == want.tolist(), (h, w)
            if h == w == 30 or (h, w) == (3, 17):
                assert ViewEncoder(EncodingConfig(format=fmt)).grid_len(w, h) == len(want)


@pytest.mark.parametrize("fmt", FORMATS)
def test_grid_ids_match_the_real_embedded_tokenizer(fmt):
    tok = load_tokenizer()
    g = np.random.default_rng(1).integers(0, 10, (12, 7)).astype(np.uint8)
    assert grid_ids(g, fmt).tolist() == tok(grid_to_text(g, fmt), add_special_tokens=False)["input_ids"]


def test_view_features_are_tokenize_task_of_the_applied_view():
    rng = np.random.default_rng(2)
    pairs = [Pair(*(rng.integers(0, 10, tuple(rng.integers(1, 9, 2))).astype(np.uint8) for _ in "io")) for _ in "abcd"]
    task = Task("t", tuple(pairs[:3]), (pairs[3],))
    for loss_on in ("test", "outputs"):
        cfg = EncodingConfig(loss_on=loss_on, format="shape+rows")
        spec = AugmentSpec("rot90", (0, 2, 1, 3, 4, 5, 6, 7, 9, 8), (2, 0, 1))
        feats, drop = ViewEncoder(cfg).features([task.train[j] for j in (2, 0, 1)], task.test[0], spec, trim=True)
        assert drop == 0 and feats == tokenize_task(apply_task(task, spec), cfg).to_features()
    # too long: trimmed to the last train pair, or None without trimming / when even that does not fit
    short = EncodingConfig(max_seq_len=tokenize_task(Task("t", task.train[2:], task.test)).n_tokens)
    feats, drop = ViewEncoder(short).features(task.train, task.test[0], AugmentSpec(), trim=True)
    assert drop == 2 and feats == tokenize_task(Task("t", task.train[2:], task.test), short).to_features()
    assert ViewEncoder(short).features(task.train, task.test[0], AugmentSpec(), trim=False) == (None, 0)
    tiny = EncodingConfig(max_seq_len=short.max_seq_len - 1)
    assert ViewEncoder(tiny).features(task.train, task.test[0], AugmentSpec(), trim=True) == (None, 2)
    with pytest.raises(ValueError, match="markers prompt only"):
        ViewEncoder(EncodingConfig(prompt="marc", chat_template=True))


@pytest.mark.parametrize(
    "opts",
    [
        AugmentOptions(),
        AugmentOptions(colors="all", transforms=("rot90", "flip_v")),
        AugmentOptions(p_bg=0.3, shuffle=False),
        AugmentOptions(colors="1:2,2:1", compose=("upscale", "pad:1:5:output", "tile"), p_compose=0.6),
        AugmentOptions(colors="none", compose=("mirror",), compose_targets=("both",)),
    ],
)
def test_draw_spec_draws_what_random_spec_draws_and_the_spec_is_valid(opts):
    task = Task("t", tuple(Pair(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8)) for _ in range(5)), ())
    for seed in range(50):
        got = draw_spec(np.random.default_rng(seed), opts, 5)
        want = random_spec(np.random.default_rng(seed), opts, task)
        assert got == want and hash(got) == hash(want)
        assert AugmentSpec.from_json(got.to_json()) == got  # the unchecked fields pass the checks
        assert all(type(c) is int for c in got.colors) and (got.order is None or all(type(i) is int for i in got.order))
    assert random_spec(7, opts, task).seed == 7


def test_a_stream_over_a_source_with_an_unknown_output_takes_the_tokenising_path():
    from ttft.engine.samples import SampleStream
    from ttft.engine.train_config import TrainConfig

    g = np.ones((2, 2), np.uint8)
    known = Task("k", (Pair(g, g), Pair(g, g)), (Pair(g, g),))
    assert SampleStream([known], "ttft", 5, TrainConfig(), None)._fast
    unknown = Task("t", (Pair(g, g), Pair(g, g)), (Pair(g, None),))
    stream = SampleStream([unknown], "ttft", 5, TrainConfig(), None)
    assert not stream._fast
    with pytest.raises(ValueError, match="no known output to train on"):
        stream[0]
