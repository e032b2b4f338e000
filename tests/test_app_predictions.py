"""AppTest of the Predictions page over a small runs folder built here: a finished run with a prediction made by the
real pipeline (an oracle stands in for the model's generation) and a bare-model baseline."""

from pathlib import Path

import pytest
from _predfake import TASKS, fake_run, make_prediction, tiny_model_dir
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/4_Predictions.py"
RUN = "20261125-ttft-demo"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pred_runs")
    model = tiny_model_dir(tmp_path_factory.mktemp("pred_tiny"))
    run = fake_run(root / RUN, model)
    with pytest.MonkeyPatch.context() as mp:
        make_prediction(mp, root / "baselines" / "predictions" / "base-4v", base_model=model,
                        policy=lambda tid, view: "garbage" if tid == TASKS[2] else "wrong")
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
    flips = at.dataframe[1].value
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
