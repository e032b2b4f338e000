"""The training sample stream (ttft/engine/samples.py) against a slow reference computed the plain way.

The reference below draws each sample with the public functions, one step after the other: the pool draw, the
augment spec (:func:`random_spec` / :func:`marc_spec`), :func:`try_apply_task` on every pair, then the plain
:func:`tokenize_task` of the whole task, popping the first train pair and tokenising again while it does not fit
(no length arithmetic, no pre-trimming). For the embedded tokenizer the first configuration is tokenised by the real
``transformers`` tokenizer (``fast=False``), the others by the lookup-table encoder, which test_encoding checks
against it. The stream must give the same ``input_ids``, ``labels`` and ``attention_mask`` for every sample, the
same counts (samples, trimmed, dropped, skipped augmentations), and the same samples when a fresh stream starts in
the middle (a resumed run)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ttft.core.augment import IDENTITY_COLORS, AugmentOptions, random_spec, try_apply_task
from ttft.core.data import Pair, Task, load_dataset
from ttft.core.encoding import EncodingConfig, tokenize_task
from ttft.core.pools import pool_from_json
from ttft.core.profiles import marc_spec, preview_tokenizer
from ttft.engine.samples import SampleStream, source_tasks
from ttft.engine.train_config import TrainConfig


def rand_pairs(n, seed, side):
    rng = np.random.default_rng(seed)

    def grid():
        h, w = rng.integers(side[0], side[1] + 1, 2)
        return rng.integers(0, 10, (h, w)).tolist()

    return [{"input": grid(), "output": grid()} for _ in range(n)]


@pytest.fixture(scope="module")
def pools():
    """Pools like RE-ARC's (sides 1-30, so most samples are trimmed at 2,048 tokens) and one of small grids."""
    out = []
    for i, side in enumerate([(1, 30), (1, 30), (3, 30), (1, 8)]):
        task, errors = pool_from_json(rand_pairs(40, 100 + i, side), f"pool{i}")
        assert task is not None and not errors
        out.append(task)
    return out


@pytest.fixture(scope="module")
def arc():
    return list(load_dataset("arc-agi-1/training"))[:40]


def reference(stream: SampleStream, n: int, fast: bool = True) -> tuple[list[dict], dict]:
    """Samples 0..n-1 of ``stream`` computed the plain way, and the counts they give."""
    cfg = stream.cfg
    counts = {"samples": 0, "trimmed": 0, "dropped": 0, "augment_skipped": 0}
    out = []
    for i in range(n):
        for attempt in range(20):
            rng = np.random.default_rng([cfg.seed, i, attempt])
            src = stream._source(i + attempt * 7919)  # which source task: not what this test is about
            if cfg.mode == "finetune" and src.pool:
                m = len(src.train)
                k = int(rng.integers(min(cfg.pool_pairs_min, m), min(cfg.pool_pairs_max, m) + 1))
                pairs = [src.train[int(j)] for j in rng.choice(m, size=k, replace=False)]
                task = Task(src.id, tuple(pairs[:-1]), tuple(pairs[-1:]))
            elif cfg.mode == "finetune":
                pairs = [src.train[int(j)] for j in rng.permutation(len(src.train))]
                task = Task(src.id, tuple(pairs[:-1]), tuple(pairs[-1:]))
            else:
                task = src
            spec = marc_spec(rng, task) if cfg.augment_recipe == "marc" else random_spec(rng, cfg.augment, task)
            if cfg.keep_original_colors and rng.random() < cfg.keep_original_colors:
                spec = dataclasses.replace(spec, colors=IDENTITY_COLORS)
            res = try_apply_task(task, spec)
            if res.task is None:
                counts["augment_skipped"] += 1
                continue
            task = res.task
            test_index = int(rng.integers(len(task.test)))
            train = list(task.train)
            while True:
                tt = tokenize_task(
                    Task(task.id, tuple(train), task.test), cfg.encoding, stream.tokenizer, test_index, fast=fast
                )
                if tt.fits or cfg.too_long != "trim" or len(train) <= 1:
                    break
                train.pop(0)
            if not tt.fits:
                counts["dropped"] += 1
                continue
            counts["trimmed"] += len(train) < len(task.train)
            counts["samples"] += 1
            out.append(
                {
                    "input_ids": [int(x) for x in tt.input_ids],
                    "labels": [int(x) for x in tt.labels],
                    "attention_mask": [int(x) for x in tt.attention_mask],
                }
            )
            break
        else:
            raise AssertionError(f"sample {i}: no attempt fits")
    return out, counts


def check(sources, cfg, n=60, tokenizer=None, mix=None, fast=True, resume=None):
    """The stream equals the reference, sample by sample and in its counts; a fresh stream started at ``resume``
    gives the same samples from there."""
    stream = SampleStream(sources, cfg.mode, n, cfg, tokenizer, mix=mix)
    want, counts = reference(SampleStream(sources, cfg.mode, n, cfg, tokenizer, mix=mix), n, fast)
    got = [stream[i] for i in range(n)]
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, f"sample {i} differs"
    assert stream.counts == counts
    if resume is not None:
        again = SampleStream(sources, cfg.mode, n, cfg, tokenizer, mix=mix)
        assert [again[i] for i in range(resume, n)] == want[resume:]
    return counts


FT = TrainConfig(mode="finetune")


def test_the_pool_stream_is_the_plain_reference_tokenised_by_the_real_tokenizer(pools):
    counts = check(pools, FT, n=80, fast=False, resume=50)
    assert counts["trimmed"] > 20 and counts["samples"] == 80  # the trimming is exercised


def test_the_pool_stream_is_the_plain_reference_over_200_samples_and_a_resume(pools):
    counts = check(pools, FT.replace(seed=5), n=200, resume=150)
    assert counts["trimmed"] > 50


@pytest.mark.parametrize("fmt", ["shape+rows", "separated", "arc24", "numpy"])
def test_every_grid_format_gives_the_reference_stream(pools, fmt):
    enc = EncodingConfig(format=fmt, max_seq_len=1500)
    counts = check(pools, FT.replace(encoding=enc), n=50)
    assert counts["trimmed"] > 5


AUGMENTS = {
    "off": AugmentOptions(transforms=("identity",), colors="none", shuffle=False),
    "geometric-only": AugmentOptions(colors="none"),
    "colours-only": AugmentOptions(transforms=("identity",), colors="all", shuffle=False),
    "keep-bg-p": AugmentOptions(transforms=("rot90", "transpose"), p_bg=0.5),
    "explicit-map": AugmentOptions(colors="0213456789", transforms=("flip_h", "rot270")),
    "compose": AugmentOptions(compose=("upscale", "pad", "mirror:h:input"), p_compose=0.5),
    "compose-tile": AugmentOptions(compose=("tile",), compose_targets=("output",)),
}


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_augmentations_on_and_off_give_the_reference_stream(pools, name):
    counts = check(pools, FT.replace(augment=AUGMENTS[name], seed=2), n=50)
    if name.startswith("compose"):
        assert counts["augment_skipped"] > 0  # views over 30x30 are skipped (and counted) as before


@pytest.mark.parametrize(
    "changes",
    [
        {"too_long": "drop", "encoding": EncodingConfig(max_seq_len=1200)},
        {"encoding": EncodingConfig(max_seq_len=1800, loss_on="outputs")},
        {"encoding": EncodingConfig(max_seq_len=1800, loss_on="reply")},
        {"encoding": EncodingConfig(max_seq_len=1600, input_marker="in", output_marker="out put")},
        {"encoding": EncodingConfig(max_seq_len=300)},  # most draws drop, some pools' pairs alone do not fit
        {"keep_original_colors": 0.5},
        {"augment_recipe": "marc"},
        {"pool_pairs_min": 2, "pool_pairs_max": 12, "encoding": EncodingConfig(max_seq_len=8192)},
    ],
    ids=["drop", "loss-outputs", "loss-reply", "markers", "short", "keep-colours", "marc", "no-trim"],
)
def test_stream_options_give_the_reference_stream(pools, changes):
    cfg = FT.replace(**changes)
    counts = check(pools, cfg, n=50)
    if cfg.too_long == "drop" or cfg.encoding.max_seq_len == 300:
        assert counts["dropped"] > 0


def test_arc_tasks_in_finetune_mode_give_the_reference_stream(arc):
    srcs = [s for t in arc for s in source_tasks(t, FT, None)]
    check(srcs, FT.replace(encoding=EncodingConfig(max_seq_len=2048)), n=100, resume=70)
    check(srcs, FT.replace(encoding=EncodingConfig(format="shape+rows", max_seq_len=1024)), n=60)


@pytest.mark.parametrize("leave_out", [1, 2])
def test_leave_out_tasks_in_ttft_mode_give_the_reference_stream(arc, leave_out):
    cfg = TrainConfig(leave_out=leave_out, encoding=EncodingConfig(max_seq_len=1024))
    srcs = [s for t in arc[:12] for s in source_tasks(t, cfg, None)]
    check(srcs, cfg, n=60, resume=40)


def test_a_mix_of_pools_and_tasks_gives_the_reference_stream(pools, arc):
    cfg = FT.replace(more_datasets=("x",), dataset_weights=(1.0, 2.0))
    mix = [[s for t in arc[:10] for s in source_tasks(t, cfg, None)], pools]
    check([], cfg, n=60, mix=mix, resume=30)


def test_an_n2_task_with_two_test_pairs_gives_the_reference_stream():
    g = [np.full((3, 2 + k % 3), k, np.uint8) for k in range(8)]
    task = Task("t", tuple(Pair(g[i], g[i + 1]) for i in range(3)), (Pair(g[4], g[5]), Pair(g[6], g[7])))
    check([task], TrainConfig(), n=40)


@pytest.mark.parametrize("chat", [False, True])
def test_a_real_tokenizer_gives_the_reference_stream(pools, chat):
    """Another tokenizer (a character-level one with a chat template, not the embedded one) tokenises the text
    itself: the plain path, unchanged."""
    tok = preview_tokenizer("preview-chatml")
    cfg = FT.replace(encoding=EncodingConfig(max_seq_len=2500, chat_template=chat))
    counts = check(pools, cfg, n=25, tokenizer=tok)
    assert counts["trimmed"] > 0


def test_the_embedded_tokenizer_passed_as_an_object_gives_the_same_stream(pools):
    from ttft.core.tokenizer import load_tokenizer

    a = SampleStream(pools, "finetune", 30, FT, load_tokenizer())
    b = SampleStream(pools, "finetune", 30, FT, None)
    assert [a[i] for i in range(30)] == [b[i] for i in range(30)]
