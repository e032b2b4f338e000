"""AppTest of the Predictions page over a small runs folder built here: a finished run with a prediction made by the
real pipeline (an oracle stands in for the model's generation) and a bare-model baseline."""

import json
import os
import time
from pathlib import Path

import pytest
from _predfake import TASKS, fake_run, make_prediction, tiny_model_dir
from streamlit.testing.v1 import AppTest

from ttft.core.data import load_dataset
from ttft.runs.rundir import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/4_Predictions.py"
RUN = "20261125-ttft-demo"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pred_runs")
    model = tiny_model_dir(tmp_path_factory.mktemp("pred_tiny"))
    run = fake_run(root / RUN, model)
    with pytest.MonkeyPatch.context() as mp:
        make_prediction(
            mp,
            root / "baselines" / "predictions" / "base-4v",
            base_model=model,
            policy=lambda tid, view: "garbage" if tid == TASKS[2] else "wrong",
        )
        make_prediction(mp, run / "predictions" / "ttft-4v", run=str(run))
    return root


def page(runs_dir, monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("TTFT_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGE)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_summary_and_task_table(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN)
    assert not at.exception
    assert at.title[0].value == "Predictions"
    assert at.selectbox(key="pred_run").value == RUN and at.selectbox(key="pred_name").value == "ttft-4v"
    m = metrics(at)
    assert m["tasks"] == "3" and m["solved"] == "2" and m["pass@2"] == "66.7%" and m["accuracy"] == "50.0%"
    assert m["unanswered"] == "16.7%"
    table = at.dataframe[0].value
    assert sorted(table["task"]) == sorted(TASKS)
    assert table.set_index("task").loc[TASKS[0], "solved"] == True  # noqa: E712
    assert any("full fine-tune of run" in c.value for c in at.caption)


def test_table_filters(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN)
    at.selectbox(key="pred_f_solved").select("unsolved").run()
    assert list(at.dataframe[0].value["task"]) == [TASKS[2]]
    at.selectbox(key="pred_f_solved").select("all").run()
    at.selectbox(key="pred_f_size").select("mismatch").run()  # task 3: attempt 1 lacks a column
    assert list(at.dataframe[0].value["task"]) == [TASKS[2]]
    at.selectbox(key="pred_f_size").select("all").run()
    at.slider(key="pred_f_pixels").set_value(0.99).run()
    assert list(at.dataframe[0].value["task"]) == [TASKS[0]]
    assert not at.exception


def test_open_a_task_from_the_table(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN)
    at.selectbox(key="pred_open").select(TASKS[1]).run()
    at.button(key="pred_open_btn").click().run()
    assert not at.exception
    assert at.title[0].value == f"Task {TASKS[1]}"
    assert at.query_params["task"] == [TASKS[1]] or at.query_params["task"] == TASKS[1]


def test_deep_link_to_a_task_view(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN, task=TASKS[2])
    assert not at.exception
    assert at.title[0].value == f"Task {TASKS[2]}"
    labels = [m.value for m in at.markdown]
    assert "**Test input** · 3×3" in labels and "**Truth** · 9×9" in labels
    # views 1 and 3 (rot90, rot270) dropped a row of their frame: a column of the original
    assert any(x.startswith("**Attempt 1** · 9×8") for x in labels)
    assert any("shape mismatch: 9×8 vs 9×9" in x for x in labels)
    # input, truth, 2 attempts and their 2 diff images, all PNG
    imgs = at.get("image")
    assert len(imgs) == 6 and all(im.proto.imgs[0].url.endswith(".png") for im in imgs)
    cands = at.dataframe[0].value
    assert list(cands["votes"]) == [1, 1] and cands["right"].tolist() == [False, False]
    assert "colours" in " ".join(cands["views"])  # the augmentation of each vote
    # prev / next / back
    at.button(key="prev").click().run()
    assert at.title[0].value == f"Task {TASKS[1]}"
    at.button(key="to_table").click().run()
    assert at.title[0].value == "Predictions"


def test_solved_task_view_has_no_diff(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN, pred="ttft-4v", task=TASKS[0])
    assert not at.exception
    labels = [m.value for m in at.markdown]
    assert any("right" in x for x in labels) and not any("wrong" in x for x in labels)
    assert len(at.get("image")) == 3  # input, truth, attempt 1 (attempt 2 absent: one candidate)


def test_unknown_task_and_run(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN, task="nope")
    assert not at.exception and "not in prediction" in at.error[0].value
    at = page(runs_dir, monkeypatch, run="no-such-run")
    assert not at.exception and "no-such-run" in at.error[0].value
    assert at.title[0].value == "Predictions"


def test_before_after_and_compare(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN)
    m = metrics(at)
    assert m["unsolved → solved"] == "2" and m["solved → unsolved"] == "0" and m["unsolved both"] == "1"
    assert at.selectbox(key="pred_before").value == "baselines · base-4v"
    flips = next(d.value for d in at.dataframe if "flip" in d.value.columns)
    assert sorted(flips["task"]) == sorted(TASKS[:2])
    compare = next(d.value for d in at.dataframe if "experiment" in d.value.columns)
    assert list(compare["experiment"]) == [f"{RUN} · ttft-4v", "baselines · base-4v"]
    assert compare["train time (s)"].tolist()[0] == 42.0
    assert len(at.get("plotly_chart")) >= 4  # loss curve, per-run bars, loss scatter, overlaid curves


def test_baseline_run_selected_from_the_sidebar(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN)
    at.selectbox(key="pred_run").select("baselines").run()
    assert not at.exception
    assert metrics(at)["solved"] == "0" and at.query_params["run"] in (["baselines"], "baselines")


def test_empty_runs_folder(tmp_path, monkeypatch):
    at = page(tmp_path, monkeypatch)
    assert not at.exception
    assert "No predictions yet" in at.info[0].value
    assert at.button(key="pred_l_go") is not None


# --------------------------------------------------------------------------- issue 12: the researcher's task view


def test_task_view_has_train_pairs_every_candidate_and_raw_text(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN, task=TASKS[2])  # unsolved: 2 views unparseable, 2 a row short
    assert not at.exception
    labels = [m.value for m in at.markdown]
    n_train = len(load_dataset("arc-agi-1/evaluation")[TASKS[2]].train)
    assert f"**Train pairs** ({n_train}) · input → output" in labels
    html = " ".join(h.proto.body for h in at.get("html"))
    assert html.count("data:image/png;base64,") == n_train + 2  # every train pair, and both candidates
    assert "pair 1: 3×3 → 9×9" in html and "#1 · 1/4 votes" in html and "#2 · 1/4 votes" in html
    assert "wrong shape" in html  # each candidate is a row short
    # the raw text of the unanswered views, with the reason
    assert any(e.label.startswith("Unanswered views (2 of 4)") for e in at.expander)
    codes = [c.value for c in at.code]
    assert sum("?? not a grid" in c for c in codes) >= 2
    assert any("why:" in c.value and "view 0" in c.value for c in at.caption)
    # the legend of the diff marks tells a wrong colour from a shape error
    assert any("outside the attempt's shape (missing)" in c.value for c in at.caption)


def test_back_to_the_table_after_clicking_a_row(runs_dir, monkeypatch):
    """'← All tasks' after opening a task by clicking its row returns to the table (no stale selection)."""
    at = page(runs_dir, monkeypatch, run=RUN)
    key = next(d.key for d in at.dataframe if d.key and d.key.startswith("pred_table"))
    row = list(at.dataframe[0].value["task"]).index(TASKS[1])
    at.session_state[key] = {"selection": {"rows": [row], "columns": [], "cells": []}}
    at.run()
    assert at.title[0].value == f"Task {TASKS[1]}"
    at.button(key="to_table").click().run()
    assert at.title[0].value == "Predictions" and "task" not in at.query_params
    at.run()
    assert at.title[0].value == "Predictions"  # and it stays there
    assert not at.exception


def test_downloads_of_a_finished_prediction(runs_dir, monkeypatch):
    from ttft.runs.predictions import read_prediction
    from ttft.ui.predict_widgets import submission_bytes

    at = page(runs_dir, monkeypatch, run=RUN)
    buttons = {b.label: b for b in at.get("download_button")}
    assert {"submission.json", "predictions.jsonl", "tasks.jsonl", "metrics.json", "config.json"} <= set(buttons)
    ref = read_prediction(runs_dir / RUN / "predictions" / "ttft-4v", runs_dir)
    data, complete = submission_bytes(ref)
    assert complete and json.loads(data) == json.loads((ref.path / "submission.json").read_text())


def test_config_differences_show_only_options_that_differ(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN)
    diff = next(d.value for d in at.dataframe if "option" in d.value.columns)
    assert len(diff) and not any(o.startswith("train.") for o in diff["option"])  # the baseline has no train config
    assert "predict.run" in set(diff["option"])  # a run against none is a difference
    for _, row in diff.iterrows():
        assert len(set(row.iloc[1:])) > 1, row.to_dict()
    assert any(m.value.startswith(f"**Config differences** ({len(diff)} options differ)") for m in at.markdown)


# --------------------------------------------------------------------------- issue 12: predicting from the UI


def test_run_panel_link_opens_the_form_with_the_run(runs_dir, monkeypatch):
    """``?run=<run folder>&new=1`` (the Fine-tune run panel): the form with that run as the model, even without a
    prediction of it, its dataset and tasks preselected, and the exact command."""
    fresh = fake_run(runs_dir / "20261126-fresh", str(runs_dir / RUN / "model"), tasks=TASKS[:2])
    at = page(runs_dir, monkeypatch, run=str(fresh), new="1")
    assert not at.exception
    assert at.title[0].value == "New prediction"
    assert at.radio(key="pred_l_src").value == "a training run"
    assert at.selectbox(key="pred_l_run").value == str(fresh)
    assert at.text_input(key="pred_l.tasks").value == ", ".join(TASKS[:2])
    assert at.selectbox(key="pred_l.dataset_src").value == "arc-agi-1/evaluation"
    cmd = next(c.value for c in at.code if c.value.startswith("python -m ttft predict"))
    assert f"--run {fresh}" in cmd and "--tasks 00576224,0c786b71" in cmd
    assert f"--out {fresh}/predictions/" in cmd and "--name " in cmd
    assert not at.button(key="pred_l_go").disabled
    at.button(key="pred_l_back").click().run()
    assert at.title[0].value == "Predictions"


def test_tasks_page_link_preselects_the_dataset_and_task(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, dataset="arc-agi-1/training", task="007bbfb7", new="1")
    assert not at.exception and at.title[0].value == "New prediction"
    assert at.text_input(key="pred_l.tasks").value == "007bbfb7"
    assert at.selectbox(key="pred_l.dataset_src").value == "arc-agi-1/training"
    cmd = next(c.value for c in at.code if c.value.startswith("python -m ttft predict"))
    assert "--dataset arc-agi-1/training" in cmd and "--tasks 007bbfb7" in cmd


def test_a_run_folder_given_as_base_model_is_refused_with_the_fix(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, new="1")
    at.radio(key="pred_l_src").set_value("a base model").run()
    at.radio(key="pred_l_base_src").set_value("local folder").run()
    at.text_input(key="pred_l_base").input(str(runs_dir / RUN)).run()
    assert any("is a training run folder, not a model" in e.value for e in at.error)
    assert at.button(key="pred_l_go").disabled
    at.button(key="pred_l_use_run").click().run()
    assert at.radio(key="pred_l_src").value == "a training run"
    cmd = next(c.value for c in at.code if c.value.startswith("python -m ttft predict"))
    assert f"--run {runs_dir / RUN}" in cmd


def _job(root: Path, name: str, out: Path, status: dict, argv_extra=()) -> Path:
    d = root / name
    d.mkdir(parents=True)
    argv = ["predict", "--run", str(root / RUN), *argv_extra, "--out", str(out), "--json"]
    write_json_atomic(
        d / "job.json",
        {
            "argv": argv,
            "kind": "cpu",
            "created": 2000.0,
            "queued_at": 2000.0,
            "config": {"run": str(root / RUN), "views": 4, "out": str(out)},
        },
    )
    write_json_atomic(d / "status.json", status)
    return d


def test_a_failed_prediction_job_shows_its_error(tmp_path, monkeypatch):
    """A job that failed before writing its folder (exit 2) is listed, with the error it recorded."""
    root = tmp_path / "runs"
    model = tiny_model_dir(tmp_path / "tiny")
    fake_run(root / RUN, model)
    out = root / RUN / "predictions" / "broken"
    job = _job(
        root,
        "20261126-predict-broken",
        out,
        {"status": "failed", "exit_code": 2, "ended": 2001.0, "error": "predict: tasks: unknown task id 'nope1234'"},
    )
    (job / "stderr.txt").write_text("predict: tasks: unknown task id 'nope1234'\n")
    at = page(root, monkeypatch, run=RUN, pred="broken")
    assert not at.exception
    assert at.selectbox(key="pred_name").value == "broken"
    assert any("failed: predict: tasks: unknown task id 'nope1234'" in e.value for e in at.error)


def test_a_running_prediction_shows_live_progress_and_stop(tmp_path, monkeypatch):
    """A running prediction (this process stands in for its job): progress per task and views, and Stop."""
    from ttft.runs.rundir import process_start_time

    root = tmp_path / "runs"
    model = tiny_model_dir(tmp_path / "tiny")
    run = fake_run(root / RUN, model)
    out = run / "predictions" / "live"
    make_prediction(monkeypatch, out, run=str(run))
    (out / "metrics.json").unlink()
    (out / "submission.json").unlink()
    lines = (out / "tasks.jsonl").read_text().splitlines()
    (out / "tasks.jsonl").write_text(lines[0] + "\n")
    st = json.loads((out / "status.json").read_text())
    now = time.time()
    st.update(
        status="running",
        pid=os.getpid(),
        pid_start=process_start_time(os.getpid()),
        started=now - 30,
        done=1,
        total=3,
        views_done=4,
        views_total=12,
    )
    st.pop("ended", None)
    write_json_atomic(out / "status.json", st)
    at = page(root, monkeypatch, run=RUN, pred="live")
    assert not at.exception
    bar = at.get("progress")[0]
    assert "Running · 1/3 tasks · 4/12 views" in bar.proto.text and "left" in bar.proto.text
    assert at.button(key="pred_stop") is not None and not at.button(key="pred_stop").disabled
    assert list(at.dataframe[0].value["task"]) == [TASKS[0]]  # the finished task is there already
    assert "submission.json (partial)" in [b.label for b in at.get("download_button")]


def _wait(at, cond, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        assert not at.exception, at.exception
        if cond(at):
            return at
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _table(at):
    return next((d.value for d in at.dataframe if d.key and d.key.startswith("pred_table")), None)


@pytest.mark.slow
def test_predict_a_finished_run_from_the_page_live_then_stop(tmp_path, monkeypatch):
    """The whole loop: the run panel's link, Launch, the new prediction listed at once, its first tasks while it
    runs, Stop there, and the stopped prediction keeps the tasks done (metrics and submission for them)."""
    from ttft.runs import jobs, registry
    from ttft.runs.predictions import find_predictions

    root = tmp_path / "runs"
    run = fake_run(root / "20261126-tiny-run", tiny_model_dir(tmp_path / "tiny"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    small = [t.id for t in load_dataset("arc-agi-1/evaluation") if t.stats().tokens <= 1000]  # 140 tasks
    at = page(root, monkeypatch, run=str(run), new="1")
    assert at.text_input(key="pred_l.tasks").value == ", ".join(TASKS)  # the run's tasks, preselected
    at.text_input(key="pred_l.tasks").input(", ".join(small)).run()  # more, to have time to stop it
    at.number_input(key="pred_l.views").set_value(2).run()
    at.number_input(key="pred_l.max_new_tokens").set_value(8).run()
    at.number_input(key="pred_l.threads").set_value(1).run()
    at.checkbox(key="pred_l.val_loss").uncheck().run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="pred_l_go").click().run()
    try:
        assert not at.exception
        assert at.title[0].value == "Predictions"
        assert any(s.value.startswith("Launched") for s in at.success)
        name = at.selectbox(key="pred_name").value
        assert at.selectbox(key="pred_run").value == run.name and name.endswith("-2v")
        _wait(at, lambda a: _table(a) is not None and len(_table(a)) >= 1, "the first task on the page")
        bars = at.get("progress")
        if bars:  # (unless it ended meanwhile)
            assert "tasks" in bars[0].proto.text and "views" in bars[0].proto.text
        at.button(key="pred_stop").click().run()
        _wait(at, lambda a: any(i.value.startswith("Stopped:") for i in a.info), "the stopped state")
    finally:
        for j in registry.list_jobs(root):
            if j.active:
                jobs.stop(j, wait=True, timeout=30)
    ref = next(r for r in find_predictions(root) if r.name == name)
    kept = ref.tasks()
    assert ref.state == "stopped" and 1 <= len(kept) < len(ref.config["tasks"])
    assert ref.metrics()["summary"]["n_tasks"] == len(kept)
    assert len(json.loads((ref.path / "submission.json").read_text())) == len(ref.config["tasks"])
    assert len(_table(at)) == len(kept)
