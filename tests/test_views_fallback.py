"""MARC's fallback when no leave-one-out view fits the token limit (ekinakyurek/marc ``inference/preprocess.py``,
``get_preprocessed_tasks_single``: the inference tasks made again with one pair more left out, the ones that fit
kept): the views leaving two train pairs out, added per test input, recorded with both pairs in ``left_out``."""

import itertools

import numpy as np
import pytest
from _predfake import TASKS, make_prediction, tiny_model_dir

from ttft.core.data import Pair, Task, load_dataset
from ttft.core.encoding import EncodingConfig, tokenize_task
from ttft.core.tokenizer import build_embedded_tokenizer
from ttft.engine.generate import Predictor
from ttft.engine.models import ModelConfig
from ttft.engine.predict import build_items
from ttft.engine.predict_config import PredictConfig
from ttft.engine.sources import Source
from ttft.engine.views import MARC_TRANSFORMS, fallback_plan, marc_views, n_views, view_plan, view_specs, view_task
from ttft.runs.rundir import read_json, read_jsonl

BUDGET = 24  # max_new_tokens: the output budget of every view here


def cfg(**kw) -> PredictConfig:
    return PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", max_new_tokens=BUDGET, **kw)


@pytest.fixture(scope="module")
def ds():
    return load_dataset("arc-agi-1/evaluation")


@pytest.fixture(scope="module")
def pred() -> Predictor:
    """Enough of a predictor to encode prompts (no model)."""
    return Predictor(None, build_embedded_tokenizer(), "cpu", Source("base", ModelConfig(), EncodingConfig()), [2], 0)


def grid(v: int, side: int = 3) -> np.ndarray:
    """A grid no transform leaves unchanged."""
    return ((np.arange(side * side).reshape(side, side) + v) % 10).astype(np.uint8)


def tiny_task(n_train: int = 4, sides: tuple[int, ...] = (3,)) -> Task:
    """``n_train`` train pairs of 3x3 grids (all the same size, so every prompt leaving one pair out is longer than
    every prompt leaving two out) and one test input per side in ``sides``."""
    train = tuple(Pair(grid(k + 1), grid(k + 2)) for k in range(n_train))
    return Task("tiny", train, tuple(Pair(grid(5, s), grid(6, s)) for s in sides))


def prompt_len(task: Task, view, pred: Predictor, test_index: int = 0) -> int:
    return tokenize_task(
        view_task(task, view), pred.source.encoding, None, test_index=test_index, answer=False
    ).n_tokens


def limit_between(task: Task, c: PredictConfig, pred: Predictor) -> int:
    """A max_seq_len that no view of the plan fits and every fallback view does."""
    longest_two = max(prompt_len(task, v, pred) for v in fallback_plan(task, c)) + BUDGET
    shortest_one = min(prompt_len(task, v, pred) for v in view_plan(task, c)) + BUDGET
    assert longest_two < shortest_one
    return longest_two


def test_marcs_fallback_views_leave_every_pair_of_train_pairs_out():
    """--views-from marc: per unordered pair (i, j) in itertools order, the rest in order and in 2 random orders (kept
    once each), then MARC's five transforms of one of those each; drawn the same each time, not MARC's n-1 draws."""
    task = tiny_task(4)
    views = fallback_plan(task, cfg(views_from="marc"))
    assert views == marc_views(task, 0, leave=2) == fallback_plan(task, cfg(views_from="marc"))
    combos = list(itertools.combinations(range(4), 2))
    base = [v for v in views if v.spec.geometric == "identity"]
    assert [v.left_out for v in base if v.spec.order is None] == combos
    assert all(len(view_task(task, v).train) == 2 for v in views)
    assert all(v.spec.order is None or sorted(v.spec.order) == [0, 1] for v in base)
    assert [v.spec.geometric for v in views[len(base) :]] == list(MARC_TRANSFORMS)
    assert all(v.left_out in combos for v in views)
    kept = view_task(task, base[0]).train  # (0, 1) left out: pairs 2 and 3 in their order
    assert all(np.array_equal(p.input, q.input) for p, q in zip(kept, task.train[2:]))
    assert fallback_plan(task, cfg(views_from="marc", seed=1)) != views  # its draws follow --seed
    # fewer than 3 train pairs: no view would keep a demonstration, so no fallback; the task plan has none
    assert fallback_plan(tiny_task(2), cfg(views_from="marc")) == []
    assert fallback_plan(tiny_task(2), cfg(views_from="leave-one-out")) == []
    assert fallback_plan(task, cfg(views_from="task")) == []


def test_leave_one_out_fallback_is_each_view_once_per_left_out_pair_of_pairs():
    task = tiny_task(4)
    c = cfg(views=4, views_from="leave-one-out", shuffle=True)
    plan = fallback_plan(task, c)
    combos = list(itertools.combinations(range(4), 2))
    assert len(plan) == 4 * len(combos)
    whole = view_specs(task, cfg(views=4, shuffle=True))
    for k in range(4):
        for ci, pair in enumerate(combos):
            v = plan[k * len(combos) + ci]
            assert v.left_out == pair
            assert (v.spec.geometric, v.spec.colors) == (whole[k].geometric, whole[k].colors)
            assert v.spec.order is None or sorted(v.spec.order) == [0, 1]


@pytest.mark.parametrize("views_from", ["marc", "leave-one-out"])
def test_a_task_whose_leave_one_out_prompts_are_too_long_uses_the_fallback(pred, views_from):
    task = tiny_task(4)
    c = cfg(views=2, views_from=views_from)
    limit = limit_between(task, c, pred)
    items = build_items(task, c, pred, limit)
    plan, extra = view_plan(task, c), fallback_plan(task, c)
    assert len(items) == len(plan) + len(extra)
    first, added = items[: len(plan)], items[len(plan) :]
    assert all(it.prompt is None and "exceed max_seq_len" in it.reason for it in first)  # kept, given up
    assert [it.view for it in added] == list(range(len(plan), len(plan) + len(extra)))
    assert all(it.prompt is not None for it in added)
    assert [it.left_out for it in added] == [v.left_out for v in extra]
    assert all(isinstance(it.left_out, tuple) and len(it.left_out) == 2 for it in added)
    # a limit the leave-one-out views fit: no fallback
    roomy = build_items(task, c, pred, limit + 1000)
    assert len(roomy) == len(plan) == n_views(task, c) and all(it.prompt is not None for it in roomy)
    # one leave-one-out view that fits is enough: MARC falls back only when none of them does
    one_fits = min(prompt_len(task, v, pred) for v in plan) + BUDGET
    some = build_items(task, c, pred, one_fits)
    assert len(some) == len(plan) and any(it.prompt is not None for it in some)


def test_the_fallback_is_per_test_input(pred):
    """MARC's tasks are per test input: only the test input none of whose views fits gets the fallback views."""
    task = tiny_task(4, sides=(2, 9))
    c = cfg(views_from="marc")
    plan, extra = view_plan(task, c), fallback_plan(task, c)
    big = max(prompt_len(task, v, pred, 1) for v in extra) + BUDGET
    assert big < min(prompt_len(task, v, pred, 1) for v in plan) + BUDGET  # test 1's n-1 views do not fit big
    assert max(prompt_len(task, v, pred, 0) for v in plan) + BUDGET <= big  # test 0's all do
    items = build_items(task, c, pred, big)
    assert sum(it.test_index == 0 for it in items) == len(plan)
    assert sum(it.test_index == 1 for it in items) == len(plan) + len(extra)
    assert {it.left_out for it in items if it.view >= len(plan)} <= set(itertools.combinations(range(4), 2))
    assert all(it.test_index == 1 for it in items if it.view >= len(plan))


def test_nothing_left_to_fall_back_on_keeps_the_views_unanswered(pred):
    task = tiny_task(2)
    c = cfg(views_from="marc")
    items = build_items(task, c, pred, 10)
    assert len(items) == n_views(task, c) and all(it.prompt is None for it in items)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return tiny_model_dir(tmp_path_factory.mktemp("fallback_tiny"))


@pytest.mark.parametrize("views_from,score", [("marc", "marc"), ("leave-one-out", "poe")])
def test_a_prediction_through_the_fallback(ds, pred, tiny, tmp_path, monkeypatch, views_from, score):
    """The real pipeline (an oracle for generation) with a max_seq_len no leave-one-out view of two 3-pair tasks
    fits: every test output is predicted from the views leaving two pairs out, written with both pairs, voted (marc;
    poe re-scores each view against its own prompt without both pairs), counted in the progress and readable by the
    explorer's strategy tables."""
    from ttft.views.strategies import candidate_frame, rankings

    two = TASKS[1:]  # 3 train pairs of one size each
    c = cfg(views=2, views_from=views_from)
    limit = max(limit_between(ds[t], c, pred) for t in two)
    out = tmp_path / "pred"
    res = make_prediction(
        monkeypatch,
        out,
        base_model=tiny,
        views=2,
        views_from=views_from,
        score=score,
        val_loss=False,
        tasks=two,
        max_seq_len=limit,
        max_new_tokens=BUDGET,
        policy=lambda tid, view: "right",
    )
    views = read_jsonl(out / "predictions.jsonl")
    n = {t: (n_views(ds[t], c), len(fallback_plan(ds[t], c))) for t in two}
    assert len(views) == sum(a + b for a, b in n.values())
    for t in two:
        lines = [v for v in views if v["task"] == t]
        plan, extra = lines[: n[t][0]], lines[n[t][0] :]
        assert all(v["unanswered"] and "exceed max_seq_len" in v["reason"] for v in plan)
        assert all(not v["unanswered"] and len(v["left_out"]) == 2 for v in extra)
        assert {tuple(v["left_out"]) for v in extra} == {(0, 1), (0, 2), (1, 2)}
    st = read_json(out / "status.json")
    assert st["views_done"] == st["views_total"] == len(views)
    tasks = {r["task"]: r for r in read_jsonl(out / "tasks.jsonl")}
    for t in two:
        test = tasks[t]["tests"][0]
        assert test["attempts"][0] == test["truth"] and test["n_views"] == sum(n[t])
        assert test["candidates"][0]["ranks"][score] == 0
        tv = [v for v in views if v["task"] == t]
        assert rankings(test, tv)["marc"][0] == test["truth"]
        assert any("without pairs" in str(x) for x in candidate_frame(test, tv)["views"])
    assert res.summary["solved"] == 2
