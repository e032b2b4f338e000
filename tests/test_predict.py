"""Prediction: views, voting, inverse mapping, batched generation, output files, CLI, runs, SIGTERM, launch."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _predfake import TASKS, fake_run, make_prediction, tiny_model_dir
from conftest import CLI_ENV as ENV
from conftest import ROOT, run_group

from ttft.core.augment import DIHEDRAL, AugmentSpec, apply_grid
from ttft.core.data import load_dataset
from ttft.core.encoding import EncodingConfig
from ttft.core.gridtext import grid_to_text
from ttft.core.voting import vote
from ttft.engine.commands import predict_argv
from ttft.engine.generate import Generated, Predictor
from ttft.engine.models import ModelConfig
from ttft.engine.predict import ViewItem, build_items, finish_item, run_items
from ttft.engine.predict_config import PredictConfig, PredictError
from ttft.engine.sources import Source
from ttft.engine.views import view_specs
from ttft.runs.predictions import find_predictions, submission
from ttft.runs.rundir import read_json, read_jsonl


@pytest.fixture(scope="module")
def ds():
    return load_dataset("arc-agi-1/evaluation")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny_predict_model"))


@pytest.fixture(scope="module")
def tok():
    from ttft.core.tokenizer import build_embedded_tokenizer

    return build_embedded_tokenizer()


def text_predictor(tok) -> Predictor:
    """A predictor without a model: enough to parse and map back outputs."""
    return Predictor(None, tok, "cpu", Source("base", ModelConfig(), EncodingConfig()), [2, 4, 5], 0)


def cli(*args, timeout=300):
    return run_group([sys.executable, "-m", "ttft", *args], timeout=timeout)


# --------------------------------------------------------------------------- views and voting


def test_view_specs(ds):
    task = ds["00576224"]
    specs = view_specs(task, PredictConfig(base_model="x", dataset="d", views=10))
    assert len(specs) == 10 and specs[0].is_identity
    assert [s.geometric for s in specs[:8]] == list(DIHEDRAL)  # identity first, then each transform in turn
    assert specs[8].geometric == "identity" and specs[8].colors != specs[0].colors  # then colour maps differ
    assert all(s.colors[0] == 0 for s in specs)  # keep-bg
    assert len({json.dumps(s.to_json()) for s in specs}) == 10
    again = view_specs(task, PredictConfig(base_model="x", dataset="d", views=10))
    assert [s.to_json() for s in again] == [s.to_json() for s in specs]
    plain = view_specs(task, PredictConfig(base_model="x", dataset="d", views=4, colors="none"))
    assert all(s.colors == tuple(range(10)) for s in plain)


def test_vote_counts_identical_grids_and_breaks_ties_by_logprob():
    a, b, c = np.array([[1]]), np.array([[2]]), np.array([[3, 3]])
    cands = vote([a, b, a, None, b, c], [-0.5, -0.1, -0.3, None, -0.2, -0.01])
    assert [x.votes for x in cands] == [2, 2, 1]
    # a and b both have 2 votes; b's mean log-prob (-0.15) beats a's (-0.4)
    assert cands[0].grid.tolist() == [[2]] and cands[0].views == [1, 4]
    assert cands[0].mean_logprob == pytest.approx(-0.15)
    assert cands[1].grid.tolist() == [[1]] and cands[2].grid.tolist() == [[3, 3]]
    # equal votes and equal log-probs: the earlier view wins; no log-prob ranks below one with
    cands = vote([b, a], [-1.0, -1.0])
    assert cands[0].grid.tolist() == [[2]]
    cands = vote([a, b], [None, -5.0])
    assert cands[0].grid.tolist() == [[2]]
    assert vote([None, None]) == []
    # grids of different shapes with the same bytes are different candidates
    assert len(vote([np.array([[1, 2]]), np.array([[1], [2]])])) == 2


@pytest.mark.parametrize("geometric", DIHEDRAL)
def test_predictions_map_back_through_every_transform(ds, tok, geometric):
    """A model that answers correctly in the view's frame gives the truth back in the original frame."""
    pred = text_predictor(tok)
    truth = ds["0c786b71"].test[0].output  # 6x8: not square, so a transposing view changes the shape
    for colors in ((0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (0, 3, 1, 2, 9, 8, 7, 6, 5, 4), (5, 3, 1, 2, 9, 8, 7, 6, 0, 4)):
        spec = AugmentSpec(geometric, colors)
        text = grid_to_text(apply_grid(truth, spec, "output")) + "</s>"
        it = ViewItem("t", 0, 1, spec, np.zeros(3, dtype=np.int64), 60, out=Generated([1], [-0.1], text))
        finish_item(it, pred)
        assert it.ok and np.array_equal(it.grid, truth), (geometric, colors)


def test_unparseable_output_is_unanswered(tok):
    pred = text_predictor(tok)
    for text in ("", "12\n345\n</s>", "ab\n", "\n\n\n"):
        it = ViewItem("t", 0, 0, AugmentSpec(), np.zeros(3, dtype=np.int64), 10, out=Generated([], [], text))
        finish_item(it, pred)
        assert it.grid is None and it.parse_reason, text
    too_long = ViewItem("t", 0, 0, AugmentSpec(), None, 10, reason="prompt too long")
    finish_item(too_long, pred)
    assert too_long.grid is None and too_long.parse_reason == "prompt too long"


def test_config_validation_names_bad_values():
    ok = dict(base_model="default", dataset="arc-agi-1/evaluation")
    PredictConfig(**ok).validate()
    for kw, name in [
        ({"views": 0}, "views"),
        ({"colors": "rainbow"}, "colors"),
        ({"transforms": ("spin",)}, "transforms"),
        ({"batch_size": -1}, "batch_size"),
        ({"temperature": 0.0}, "temperature"),
        ({"colors": "none", "views": 9}, "views"),
        ({"dtype": "int8"}, "dtype"),
        ({"name": "a/b"}, "name"),
    ]:
        with pytest.raises(PredictError, match=name):
            PredictConfig(**{**ok, **kw}).validate()
    with pytest.raises(PredictError, match="either a run"):
        PredictConfig(run="r", **ok).validate()
    with pytest.raises(PredictError, match="dataset"):
        PredictConfig(base_model="default").validate()


def test_predict_argv_round_trips_through_the_cli_parser():
    from ttft.cli.main import _register_extras, build_parser
    from ttft.cli.predict import config_from_args

    cfg = PredictConfig(
        run="/r",
        tasks=("a", "b"),
        views=3,
        colors="none",
        sample=True,
        val_loss=False,
        transforms=("identity", "rot90"),
        out="/o",
    )
    argv = predict_argv(cfg)
    assert argv[0] == "predict" and argv[-1] == "--json"
    _register_extras()
    args = build_parser().parse_args(argv)
    assert config_from_args(args).to_json() == cfg.to_json()


# --------------------------------------------------------------------------- batched generation


def test_batched_equals_unbatched_greedy_on_a_tiny_model(ds, tok):
    """Left padding (prompts of 114 to 334 tokens in one batch), attention mask and position ids: the batched greedy
    outputs and their log-probs match one generate call per view."""
    import torch
    from transformers import LlamaForCausalLM

    from ttft.engine.models import tiny_model_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_model_config(initializer_range=0.2)).eval()
    pred = Predictor(model, tok, "cpu", Source("base", ModelConfig(), EncodingConfig()), [2, 4, 5], 0)
    cfg = PredictConfig(base_model="x", dataset="d", views=4)
    items = [it for t in ("00576224", "0c786b71", "0692e18c") for it in build_items(ds[t], cfg, pred, 4096)]
    assert len({len(it.prompt) for it in items}) >= 3
    one_batch, single = copy.deepcopy(items), copy.deepcopy(items)
    with torch.no_grad():
        assert run_items(pred, one_batch, len(items), cfg) == 1
        assert run_items(pred, single, 1, cfg) == len(items)
    for a, b in zip(one_batch, single):
        assert a.out.tokens == b.out.tokens
        assert len(a.out.tokens) == len(a.out.logprobs) > 0
        assert np.allclose(a.out.logprobs, b.out.logprobs, atol=1e-4)
        assert a.out.text == b.out.text
    assert len({tuple(it.out.tokens) for it in single}) > 1  # not all the same output


def test_a_stop_during_a_batch_abandons_it_within_a_decode_step(ds, tok):
    """SIGTERM sets the stop flag; generation checks it after every token, so a long batch ends within a step and its
    views stay without output (never a cut-short grid), while the batch before it keeps its outputs; DFS too."""
    import torch
    from transformers import LlamaForCausalLM

    from ttft.engine.models import tiny_model_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_model_config(initializer_range=0.2)).eval()
    pred = Predictor(model, tok, "cpu", Source("base", ModelConfig(), EncodingConfig()), [2, 4, 5], 0)
    for decoding in ("greedy", "dfs"):
        cfg = PredictConfig(base_model="x", dataset="d", views=2, decode=decoding, min_prob=0.05)
        items = build_items(ds["00576224"], cfg, pred, 4096)
        with torch.no_grad():
            probe, count = copy.deepcopy(items[:1]), _StopAfter(None)
            run_items(pred, probe, 1, cfg, count)  # how many stop checks one whole view makes
            # the stop turns true a few checks into the second view (dfs checks once before each view, then
            # before each forward pass)
            stop = _StopAfter(count.n + (3 if decoding == "greedy" else 2))
            run_items(pred, items, 1, cfg, stop)
        assert items[0].out is not None and items[0].out.tokens == probe[0].out.tokens, decoding
        assert items[1].out is None and items[1].grid is None, decoding
        assert stop.n <= stop.after + 2, (decoding, stop.n, stop.after)  # ended at the check that saw the stop


class _StopAfter:
    """A ``should_stop`` that counts its calls and turns true after ``after`` of them (never when None)."""

    def __init__(self, after: int | None) -> None:
        self.after, self.n = after, 0

    def __call__(self) -> bool:
        self.n += 1
        return self.after is not None and self.n > self.after


# --------------------------------------------------------------------------- end to end with an oracle


def test_oracle_prediction_files_metrics_and_submission(tiny, tmp_path, monkeypatch):
    out = tmp_path / "pred"
    res = make_prediction(monkeypatch, out, base_model=tiny, views=4)
    s = res.summary
    # task 1: all 4 views right; task 2: 2 of 4 right and voted first; task 3: nothing right
    assert s["n_tasks"] == 3 and s["solved"] == 2
    assert s["pass_at_2"] == pytest.approx(2 / 3) and s["vote_1"] == pytest.approx(2 / 3)
    assert s["accuracy"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert s["unanswered"] == pytest.approx((0 + 0 + 0.5) / 3)  # task 3: half the views are garbage
    assert s["val_loss"] is not None and s["val_loss"] > 0
    for f in ("config.json", "status.json", "predictions.jsonl", "tasks.jsonl", "metrics.json", "submission.json"):
        assert (out / f).exists(), f
    cfg = read_json(out / "config.json")
    assert cfg["kind"] == "predict" and cfg["views"] == 4 and cfg["tasks"] == list(TASKS)
    st = read_json(out / "status.json")
    assert st["status"] == "finished" and st["pid"] == os.getpid() and st["pid_start"] is not None
    views = read_jsonl(out / "predictions.jsonl")
    assert len(views) == 3 * 4
    v = views[0]
    for k in ("task", "test_index", "view", "spec", "text", "grid", "unanswered", "reason", "mean_logprob", "tokens"):
        assert k in v, k
    assert AugmentSpec.from_json(v["spec"]).is_identity
    garbage = [v for v in views if v["task"] == TASKS[2] and v["unanswered"]]
    assert len(garbage) == 2 and all(v["reason"] for v in garbage)
    tasks = {r["task"]: r for r in read_jsonl(out / "tasks.jsonl")}
    t2 = tasks[TASKS[1]]["tests"][0]
    assert t2["candidates"][0]["votes"] == 2 and t2["attempts"][0] == t2["truth"]
    metrics = read_json(out / "metrics.json")
    assert set(metrics["per_task"]) == set(TASKS) and metrics["summary"]["solved"] == 2
    # Kaggle's schema: every task, one dict per test input, attempt_1/attempt_2 grids of ints 0-9
    sub = json.loads((out / "submission.json").read_text())
    assert set(sub) == set(TASKS)
    for rows in sub.values():
        assert isinstance(rows, list) and len(rows) == 1
        for row in rows:
            assert set(row) == {"attempt_1", "attempt_2"}
            for g in row.values():
                assert isinstance(g, list) and g and all(isinstance(r, list) and r for r in g)
                assert all(type(c) is int and 0 <= c <= 9 for r in g for c in r)
    assert sub[TASKS[0]][0]["attempt_1"] == tasks[TASKS[0]]["tests"][0]["truth"]
    assert sub[TASKS[0]][0]["attempt_2"] == [[0]]  # one candidate only: the fallback


def test_submission_lists_every_task_even_unanswered():
    sub = submission(["a", "b"], {"a": {"tests": [{"test_index": 0, "attempts": [[[1]], None]}]}}, {"a": 2, "b": 1})
    assert sub == {
        "a": [{"attempt_1": [[1]], "attempt_2": [[0]]}, {"attempt_1": [[0]], "attempt_2": [[0]]}],
        "b": [{"attempt_1": [[0]], "attempt_2": [[0]]}],
    }


def test_find_predictions_groups_by_run(tiny, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    run = fake_run(root / "r1", tiny)
    make_prediction(monkeypatch, run / "predictions" / "p1", run=str(run), views=2)
    make_prediction(monkeypatch, root / "experiments" / "e" / "rows" / "n-1" / "predictions", base_model=tiny, views=2)
    refs = find_predictions(root)
    assert {(r.run_key, r.name) for r in refs} == {("r1", "p1"), ("experiments/e/rows/n-1", "predictions")}
    r1 = next(r for r in refs if r.run_key == "r1")
    assert r1.state == "finished" and r1.source_run in (run, run.resolve())
    assert r1.summary()["n_tasks"] == 3 and len(r1.tasks()) == 3


# --------------------------------------------------------------------------- CLI and runs


def test_cli_end_to_end_on_a_tiny_model(tiny, tmp_path):
    out = tmp_path / "cli"
    r = cli(
        "predict",
        "--base-model",
        tiny,
        "--dataset",
        "arc-agi-1/evaluation",
        "--tasks",
        "00576224,0c786b71",
        "--views",
        "2",
        "--out",
        str(out),
        "--threads",
        "1",
        "--json",
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for k in (
        "n_tasks",
        "accuracy",
        "pass_at_2",
        "vote_1",
        "correct_pixels",
        "correct_size",
        "unanswered",
        "val_loss",
        "predictions_per_second",
        "out_dir",
    ):
        assert k in res, k
    assert res["n_tasks"] == 2 and res["out_dir"] == str(out) and res["predictions_per_second"] > 0
    assert 0 <= res["unanswered"] <= 1 and res["val_loss"] > 0
    assert read_json(out / "status.json")["status"] == "finished"
    assert len(read_jsonl(out / "predictions.jsonl")) == 2 * 2
    assert set(json.loads((out / "submission.json").read_text())) == {"00576224", "0c786b71"}


def _main(capsys, *argv):
    from ttft.cli.main import main

    rc = main(list(argv))
    return rc, capsys.readouterr().err.strip().splitlines()


def test_cli_bad_input_exits_2_with_one_line(tiny, tmp_path, capsys):
    rc, err = _main(
        capsys,
        "predict",
        "--base-model",
        tiny,
        "--dataset",
        "arc-agi-1/evaluation",
        "--tasks",
        "nope1234",
        "--out",
        str(tmp_path / "x"),
    )
    assert rc == 2 and len(err) == 1 and "nope1234" in err[0]
    rc, err = _main(capsys, "predict", "--run", str(tmp_path / "missing"))
    assert rc == 2 and len(err) == 1 and "missing" in err[0] and "no such folder" in err[0]
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"dataset": "arc-agi-1/evaluation", "model": {}}))
    (bare / "status.json").write_text(json.dumps({"status": "running"}))
    rc, err = _main(capsys, "predict", "--run", str(bare))
    assert rc == 2 and len(err) == 1 and "no adapter" in err[0] and "still running" in err[0]
    rc, err = _main(capsys, "predict", "--base-model", str(tmp_path / "nomodel"), "--dataset", "arc-agi-1/evaluation")
    assert rc == 2 and len(err) == 1 and "nomodel" in err[0]
    rc, err = _main(capsys, "predict", "--base-model", tiny, "--dataset", "arc-agi-1/evaluation", "--views", "0")
    assert rc == 2 and len(err) == 1 and "views" in err[0]
    assert not (tmp_path / "x").exists()  # nothing written before the input is checked


def test_per_task_run_matches_adapters_and_training_val_loss(tiny, tmp_path):
    """A per-task LoRA run: each task is predicted with its own adapter, and the val loss equals the one training
    computed at the end with the same adapter (the ValSet definition)."""
    from ttft.core.augment import AugmentOptions
    from ttft.engine.train import train
    from ttft.engine.train_config import TrainConfig

    ids = ("00576224", "0c786b71")
    cfg = TrainConfig(
        mode="ttft",
        dataset="arc-agi-1/evaluation",
        tasks=ids,
        per_task=True,
        steps=2,
        lr=1e-2,
        device="cpu",
        threads=1,
        save_steps=1000,
        model=ModelConfig(base_model=tiny, lora_r=2, lora_alpha=4),
        encoding=EncodingConfig(max_seq_len=2048),
        augment=AugmentOptions(shuffle=False),
    )
    run = tmp_path / "pt"
    train(cfg, run_dir=str(run), log=lambda *a: None)
    r = cli("predict", "--run", str(run), "--views", "2", "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(res["out_dir"]).parent == run / "predictions" and res["n_tasks"] == 2  # the run's tasks
    tasks = {t["task"]: t for t in read_jsonl(Path(res["out_dir"]) / "tasks.jsonl")}
    assert {t: tasks[t]["adapter"] for t in ids} == {t: t for t in ids}
    trained = {m["task"]: m["eval_loss"] for m in read_jsonl(run / "metrics.jsonl") if m.get("final")}
    for t in ids:
        assert tasks[t]["metrics"]["val_loss"] == pytest.approx(trained[t], rel=1e-4)


def test_sigterm_stops_cleanly(tiny, tmp_path):
    out = tmp_path / "stop"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ttft",
            "predict",
            "--base-model",
            tiny,
            "--dataset",
            "arc-agi-1/evaluation",
            "--max-task-tokens",
            "3000",
            "--views",
            "2",
            "--batch-size",
            "1",
            "--no-val-loss",
            "--threads",
            "1",
            "--out",
            str(out),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=ENV,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not read_jsonl(out / "tasks.jsonl"):
            assert p.poll() is None, p.communicate()[1][-3000:]
            time.sleep(0.2)
        st = read_json(out / "status.json")
        assert st["status"] == "running" and st["pid"] == p.pid and st["pid_start"] is not None
        p.send_signal(signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=240)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 0, stderr[-3000:]
    res = json.loads(stdout.strip().splitlines()[-1])
    st = read_json(out / "status.json")
    assert res["status"] == st["status"] == "stopped"
    done = read_jsonl(out / "tasks.jsonl")
    total = len(read_json(out / "config.json")["tasks"])
    assert 1 <= len(done) < total and res["n_tasks"] == len(done)
    assert len(json.loads((out / "submission.json").read_text())) == total  # every task, fallbacks for the rest


def test_launch_prediction_in_the_background(tiny, tmp_path, monkeypatch):
    from ttft.engine.commands import launch_prediction

    monkeypatch.setenv("TTFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "bg"
    info = launch_prediction(
        PredictConfig(
            base_model=tiny,
            dataset="arc-agi-1/evaluation",
            tasks=("00576224",),
            views=2,
            device="cpu",
            threads=1,
            out=str(out),
        )
    )
    assert info["out"] == str(out) and "--out" in info["argv"]
    deadline = time.time() + 240
    while time.time() < deadline and (read_json(out / "status.json") or {}).get("status") not in ("finished", "failed"):
        time.sleep(0.3)
    assert read_json(out / "status.json")["status"] == "finished"
    assert read_json(out / "metrics.json")["summary"]["n_tasks"] == 1


def test_diff_image_marks_wrong_and_missing_cells():
    import io

    from PIL import Image

    from ttft.views import grids as viz
    from ttft.views.predviz import diff_png, wrong_cells

    truth = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.uint8)
    pred = np.array([[1, 2, 3, 3], [4, 0, 6, 6]], dtype=np.uint8)  # one wrong cell, a column too many, a row short
    assert wrong_cells(pred, truth).tolist() == [[False, False, False, True], [False, True, False, True]]
    cell = 20
    im = np.array(Image.open(io.BytesIO(diff_png(pred, truth, cell=cell))))
    assert im.shape == (3 * cell + 1, 4 * cell + 1)  # the union of both shapes

    def marked(i, j):
        box = im[i * cell + 1 : (i + 1) * cell, j * cell + 1 : (j + 1) * cell]
        return bool(np.isin(box, [viz.TEXT_LIGHT, viz.TEXT_DARK]).any())

    assert {(i, j) for i in range(3) for j in range(4) if marked(i, j)} == {
        (0, 3),
        (1, 1),
        (1, 3),
        (2, 0),
        (2, 1),
        (2, 2),
    }
    assert not marked(2, 3)  # in neither grid


# --------------------------------------------------------------------------- progress per task (issue 12)


def test_groups_start_with_one_task_and_double_up_to_the_cap(ds):
    from ttft.engine.predict import _groups

    tasks = list(ds)[:40]
    pred = text_predictor(None)
    sizes = [len(g) for g in _groups(tasks, pred, PredictConfig(base_model="x", dataset="d", views=8))]
    assert sizes == [1, 2, 4, 8, 16, 9] and sum(sizes) == 40  # cap: 4 batches of 32 views = 16 tasks of 8 views
    assert [t.id for g in _groups(tasks, pred, PredictConfig(base_model="x", dataset="d", views=8)) for t in g] == [
        t.id for t in tasks
    ]  # in order
    per_task = Predictor(None, None, "cpu", Source("per-task", ModelConfig(), EncodingConfig()), [2], 0)
    assert [len(g) for g in _groups(tasks[:3], per_task, PredictConfig(base_model="x", dataset="d"))] == [1, 1, 1]


def _recording_oracle(monkeypatch, out: Path, cfg: PredictConfig, on_call=None):
    """The oracle generator, recording before each call how many tasks are readable and the status counts."""
    from _predfake import answers_for, default_policy, oracle

    from ttft.engine import predict

    gen = oracle(answers_for(load_dataset("arc-agi-1/evaluation"), cfg), default_policy)
    seen = []

    def recording(pred, prompts, *a, **k):
        st = read_json(out / "status.json") or {}
        seen.append((len(read_jsonl(out / "tasks.jsonl")), st.get("done"), st.get("views_done"), len(prompts)))
        if on_call:
            on_call(len(seen))
        return gen(pred, prompts, *a, **k)

    monkeypatch.setattr(predict, "generate", recording)
    return seen


def test_each_task_is_written_as_soon_as_its_views_are_done(tiny, tmp_path, monkeypatch):
    from ttft.engine import predict

    out = tmp_path / "progress"
    cfg = PredictConfig(
        base_model=tiny, dataset="arc-agi-1/evaluation", tasks=TASKS, views=4, batch_size=4, out=str(out), device="cpu"
    )
    seen = _recording_oracle(monkeypatch, out, cfg)
    res = predict.run_prediction(cfg)
    assert res.status == "finished" and res.summary["n_tasks"] == 3
    # group 1 = the first task (one batch of 4 views); group 2 = the other two (8 views, 2 batches, longest
    # prompts first): the first task is readable before group 2 starts, the longer task of group 2 before its
    # second batch
    assert seen == [(0, 0, 0, 4), (1, 1, 4, 4), (2, 2, 8, 4)]
    st = read_json(out / "status.json")
    assert (st["done"], st["total"], st["views_done"], st["views_total"]) == (3, 3, 12, 12)


def test_a_stopped_prediction_keeps_the_finished_tasks(tiny, tmp_path, monkeypatch):
    from ttft.engine import predict

    out = tmp_path / "stopped"
    cfg = PredictConfig(
        base_model=tiny, dataset="arc-agi-1/evaluation", tasks=TASKS, views=4, batch_size=4, out=str(out), device="cpu"
    )
    # SIGTERM during the second generate call: that batch completes a task of group 2, then the prediction stops
    _recording_oracle(monkeypatch, out, cfg, on_call=lambda n: n == 2 and os.kill(os.getpid(), signal.SIGTERM))
    res = predict.run_prediction(cfg)
    assert res.status == "stopped"
    done = [r["task"] for r in read_jsonl(out / "tasks.jsonl")]
    assert len(done) == 2 and done[0] == TASKS[0]
    metrics = read_json(out / "metrics.json")
    assert sorted(metrics["per_task"]) == sorted(done) and metrics["summary"]["n_tasks"] == 2
    assert metrics["status"] == "stopped"
    sub = json.loads((out / "submission.json").read_text())
    assert set(sub) == set(TASKS)  # every task, the finished ones with their attempts
    tasks = {r["task"]: r for r in read_jsonl(out / "tasks.jsonl")}
    assert sub[TASKS[0]][0]["attempt_1"] == tasks[TASKS[0]]["tests"][0]["attempts"][0]
    missing = next(t for t in TASKS if t not in done)
    assert sub[missing] == [{"attempt_1": [[0]], "attempt_2": [[0]]}]
    st = read_json(out / "status.json")
    assert st["status"] == "stopped" and st["done"] == 2 and st["views_done"] == 8
    assert len(read_jsonl(out / "predictions.jsonl")) == 8  # the views of the finished tasks only


def test_prediction_jobs_are_listed_before_they_write_their_folder(tmp_path):
    from ttft.runs.predictions import find_predictions, partial_submission
    from ttft.runs.rundir import write_json_atomic

    root = tmp_path / "runs"
    job = root / "20261126-predict-x"
    job.mkdir(parents=True)
    out = root / "r1" / "predictions" / "x"
    write_json_atomic(
        job / "job.json",
        {
            "argv": ["predict", "--base-model", "default", "--out", str(out)],
            "kind": "cpu",
            "queued_at": 5.0,
            "config": {"views": 2},
        },
    )
    write_json_atomic(job / "status.json", {"status": "failed", "error": "predict: boom", "exit_code": 2})
    assert find_predictions(root) == []  # not a prediction folder (yet)
    refs = find_predictions(root, jobs=True)
    assert len(refs) == 1
    ref = refs[0]
    assert ref.pending and ref.job == job and ref.path == out and (ref.run_key, ref.name) == ("r1", "x")
    assert ref.state == "failed" and ref.error == "predict: boom" and not ref.live and ref.stop_target == job
    assert ref.tasks() == [] and partial_submission(ref) == {}
