"""Leave-one-out views (--views-from leave-one-out): the view plan, and a prediction made with them and MARC's
voting through the real pipeline (an oracle stands in for generation)."""

import numpy as np
import pytest
from _predfake import TASKS, make_prediction, tiny_model_dir

from ttft.core.augment import AugmentSpec
from ttft.core.data import Task, load_dataset
from ttft.engine.predict_config import PredictConfig
from ttft.engine.views import View, n_views, view_plan, view_specs, view_task
from ttft.runs.rundir import read_json, read_jsonl


@pytest.fixture(scope="module")
def ds():
    return load_dataset("arc-agi-1/evaluation")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return tiny_model_dir(tmp_path_factory.mktemp("loo_tiny"))


def cfg(**kw) -> PredictConfig:
    return PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", **kw)


def same_pairs(a, b) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(p.input, q.input) and np.array_equal(p.output, q.output) for p, q in zip(a, b)
    )


def test_each_view_once_per_left_out_pair(ds):
    task = next(t for t in ds if len(t.train) == 3)
    c = cfg(views=4, views_from="leave-one-out", shuffle=True)
    plan = view_plan(task, c)
    assert len(plan) == n_views(task, c) == 12
    whole = view_specs(task, cfg(views=4, shuffle=True))
    for k in range(4):
        for j in range(3):
            v = plan[k * 3 + j]
            assert v.left_out == j
            assert (v.spec.geometric, v.spec.colors) == (whole[k].geometric, whole[k].colors)
            assert v.spec.order is None or sorted(v.spec.order) == [0, 1]  # a train order of the 2 pairs left
    # the view's task is the task without the pair, then augmented
    kept = view_task(task, View(AugmentSpec(), 1)).train
    assert same_pairs(kept, (task.train[0], task.train[2]))
    assert [v.left_out for v in view_plan(task, cfg(views=4))] == [None] * 4
    one = Task("one", task.train[:1], task.test)
    assert [v.left_out for v in view_plan(one, c)] == [None] * 4 and n_views(one, c) == 4


def test_a_leave_one_out_prediction_with_marc_voting(ds, tiny, tmp_path, monkeypatch):
    out, two = tmp_path / "pred", TASKS[:2]
    res = make_prediction(
        monkeypatch, out, base_model=tiny, views=2, views_from="leave-one-out", score="marc", val_loss=False, tasks=two
    )
    n = {t: len(ds[t].train) for t in two}
    views = read_jsonl(out / "predictions.jsonl")
    assert len(views) == sum(2 * k * len(ds[t].test) for t, k in n.items())
    v = [x for x in views if x["task"] == TASKS[0]]
    assert [x["left_out"] for x in v] == list(range(n[TASKS[0]])) * 2
    st = read_json(out / "status.json")
    assert st["views_done"] == st["views_total"] == len(views)
    tasks = {r["task"]: r for r in read_jsonl(out / "tasks.jsonl")}
    t1 = tasks[TASKS[0]]["tests"][0]
    assert t1["n_views"] == 2 * n[TASKS[0]]
    c = t1["candidates"][0]
    assert c["ranks"] == {"votes": 0, "marc": 0} and c["scores"]["marc"] == c["score"] > 0
    assert t1["attempts"][0] == t1["truth"]
    # task 2: right in base views 0 and 1 only (every left-out variant of them), the wrong views disagree
    assert res.summary["solved"] == 2


def test_marcs_own_inference_tasks(ds):
    """--views-from marc: per left-out pair the rest in order and in 2 random orders (kept once each), then MARC's
    five transforms of one of them each; no colour maps. Set by the marc profile with MARC's vote."""
    from ttft.core.profiles import profile_values
    from ttft.engine.views import MARC_TRANSFORMS, marc_views

    task = next(t for t in ds if len(t.train) == 4)
    views = marc_views(task)
    assert view_plan(task, cfg(views_from="marc")) == views == marc_views(task)  # drawn the same each time
    base = [v for v in views if v.spec.geometric == "identity"]
    assert [v.left_out for v in base if v.spec.order is None] == [0, 1, 2, 3]
    keys = [(v.left_out, v.spec.order) for v in base]
    assert len(keys) == len(set(keys)) and 4 < len(base) <= 12
    assert all(v.spec.order is None or sorted(v.spec.order) == [0, 1, 2] for v in base)
    geo = views[len(base) :]
    assert [v.spec.geometric for v in geo] == list(MARC_TRANSFORMS)  # no symmetric task here: all five kept
    assert all((v.left_out, v.spec.order) in keys for v in geo)
    assert all(v.spec.colors == tuple(range(10)) for v in views)
    assert n_views(task, cfg(views_from="marc")) == len(views)
    cfg(views_from="marc", colors="none", views=12).check()  # views/colours do not apply: no repeat-view error
    one = Task("one", task.train[:1], task.test)
    assert [(v.left_out, v.spec.geometric) for v in marc_views(one)] == [(None, "identity")] + [
        (None, g) for g in MARC_TRANSFORMS
    ]
    sym = np.zeros((3, 3), dtype=np.uint8)
    flat = Task("sym", tuple(p.__class__(sym, sym) for p in task.train[:2]), (task.test[0].__class__(sym, None),))
    assert [v.spec.geometric for v in marc_views(flat)] == ["identity"]  # every transform leaves it unchanged
    assert {k: v for k, v in profile_values("marc", "predict").items() if k != "profile"} == {
        "views_from": "marc",
        "score": "marc",
    }


def test_a_prediction_with_marcs_views_and_vote(tiny, tmp_path, monkeypatch, ds):
    out = tmp_path / "pred"
    make_prediction(monkeypatch, out, base_model=tiny, views_from="marc", score="marc", val_loss=False)
    from ttft.engine.views import marc_views

    views = read_jsonl(out / "predictions.jsonl")
    assert len(views) == sum(len(marc_views(ds[t])) * len(ds[t].test) for t in TASKS)
    tasks = {r["task"]: r for r in read_jsonl(out / "tasks.jsonl")}
    t1 = tasks[TASKS[0]]["tests"][0]  # right in every view
    assert t1["attempts"][0] == t1["truth"] and t1["candidates"][0]["ranks"]["marc"] == 0


def test_groups_count_every_leave_one_out_view(ds):
    """Groups of tasks batched together hold about 4 batches of views: with leave-one-out, K x n views a task."""
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.generate import Predictor
    from ttft.engine.models import ModelConfig
    from ttft.engine.predict import _groups
    from ttft.engine.sources import Source

    tasks = [t for t in ds if len(t.train) == 3][:40]
    pred = Predictor(None, None, "cpu", Source("base", ModelConfig(), EncodingConfig()), [2], 0)
    sizes = [len(g) for g in _groups(tasks, pred, cfg(views=8, views_from="leave-one-out"))]
    assert max(sizes) == 128 // 24 and sum(sizes) == 40  # 4 batches of 32 views = 5 tasks of 24 views
