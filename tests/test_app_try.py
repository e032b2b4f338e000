"""AppTest of the Try page: it opens on the task of its query parameters, a Try launches a real prediction job (a
tiny model, a runs folder of its own) whose attempts and truth appear when it has finished, and finished or failed
tries written here (the real prediction pipeline with an oracle for generation) show their badges, cell diffs and
errors."""

import time
from pathlib import Path

import pytest
from _predfake import TASKS, fake_run, make_prediction
from streamlit.testing.v1 import AppTest

from ttft.runs import rundir
from ttft.runs.rundir import write_json_atomic
from ttft.ui import try_widgets as tw

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/6_Try.py"
DATASET = "arc-agi-1/evaluation"
RUN = "20261201-ttft-tiny"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch, tiny_model) -> Path:
    root = tmp_path / "runs"
    fake_run(root / RUN, tiny_model)
    monkeypatch.setenv("TTFT_RUNS_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


def page(session: dict | None = None, **params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGE)
    for k, v in params.items():
        at.query_params[k] = v
    for k, v in (session or {}).items():
        at.session_state[k] = v
    return at.run()


def texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader])


def image_captions(at) -> list[str]:
    return [c for im in at.get("image") for c in im.captions]


def test_opens_on_the_task_of_its_query_parameters(runs_dir):
    at = page(dataset=DATASET, task=TASKS[1])
    assert not at.exception
    assert at.title[0].value == "Try a run on one task"
    assert at.selectbox(key="ttft_dataset_choice").value == DATASET
    assert at.selectbox(key="try_task").value == TASKS[1]
    assert at.radio(key="try_src").value == tw.BASE and at.text_input(key="try_base").value == "default"
    assert at.number_input(key="try_views").value == 4
    assert not at.button(key="try_go").disabled
    assert any("Press **Try**" in i.value for i in at.info)
    assert "Train pairs" in texts(at)


def test_the_embedded_model_runs_on_one_thread_with_a_task_based_budget():
    from ttft.core.data import load_dataset

    task = load_dataset(DATASET)[TASKS[1]]  # 3x4 inputs -> 6x8 outputs: a 8x10 grid with the margin, + 4
    embedded = {"base_model": "default"}
    assert tw.budget_for(task, embedded) == 10 * 9 + 4 and tw.budget_for(task, embedded, full_budget=True) == 0
    cfg = tw.try_config(DATASET, task.id, base_model="default", views=4, max_new_tokens=94)
    assert (cfg.threads, cfg.views, cfg.tasks, cfg.val_loss, cfg.device) == (1, 4, (task.id,), True, "auto")
    hub = {"base_model": "Qwen/Qwen2.5-0.5B-Instruct"}  # not on this machine: torch's threads, the engine's budget
    assert tw.budget_for(task, hub) == 0 and tw.try_config(DATASET, task.id, base_model=hub["base_model"]).threads == 0


def test_the_tasks_page_links_here_with_its_dataset_and_task(runs_dir):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/1_Tasks.py")
    at.query_params["dataset"], at.query_params["task"] = DATASET, TASKS[2]
    at.run()
    link = next(pl for pl in at.get("page_link") if pl.proto.label == "Try a run on it")
    assert link.proto.page.endswith("6_Try.py") or link.proto.page == "Try", link.proto.page
    params = dict(kv.split("=", 1) for kv in link.proto.query_string.split("&"))
    assert params["task"] == TASKS[2] and params["dataset"].replace("%2F", "/") == DATASET
    at = page(dataset=DATASET, task=TASKS[2])
    assert not at.exception and at.selectbox(key="try_task").value == TASKS[2]


def test_run_query_parameter_preselects_a_finished_run(runs_dir):
    at = page(dataset=DATASET, task=TASKS[0], run=RUN)
    assert not at.exception
    assert at.radio(key="try_src").value == tw.RUN
    assert at.selectbox(key="try_run").value == RUN
    at.radio(key="try_src").set_value(tw.BASE).run()
    assert not at.exception and at.text_input(key="try_base").value == "default"


def test_a_bad_base_model_disables_try(runs_dir, tmp_path):
    at = page(dataset=DATASET, task=TASKS[0])
    at.text_input(key="try_base").set_value(str(tmp_path)).run()  # a folder without config.json
    assert at.button(key="try_go").disabled
    assert any("not a model folder" in e.value for e in at.error)


# a real job (its process imports torch and transformers): 22 s on the 2-core machine with a load average of 8
def test_try_launches_a_job_and_shows_its_attempts_against_the_truth(runs_dir):
    at = page(dataset=DATASET, task=TASKS[0], run=RUN)
    at.number_input(key="try_views").set_value(2).run()
    at.button(key="try_go").click().run()
    assert not at.exception, at.exception
    hist = at.session_state[tw.HISTORY]
    assert len(hist) == 1 and hist[0]["task"] == TASKS[0]
    out = Path(hist[0]["out"])
    assert out.parent == runs_dir / "tries" / "predictions"
    assert "s since the click" in " ".join(i.value for i in at.info)  # queued or starting, with the time so far
    # AppTest does not fire the fragment's timed reruns: rerun the page until the try has ended (bounded; the page
    # every ~5 s while a cheap status check polls, so the reruns do not slow the job down on a 2-core machine)
    deadline, k = time.monotonic() + 240, 0
    while time.monotonic() < deadline:
        status, info = tw.try_state(hist[0])
        if status not in ("queued", "starting", "running", "stopping"):
            break
        k += 1
        if k % 10 == 0:
            at.run()
            assert not at.exception and f"#### Task {TASKS[0]} · {RUN} · 2 views, greedy" in texts(at)
        time.sleep(0.5)
    assert status == "finished", info
    at.run()
    assert not at.exception
    t = texts(at)
    assert "Result " in t and " s after the click" in t
    assert "**Test input** · " in t and "**Truth** · " in t and "**Attempt 1** · " in t and "**Attempt 2** · " in t
    assert "Every view** (2)" in t
    assert ":green-badge[finished]" in t
    n_train = len(rundir.read_json(out / "input" / f"{TASKS[0]}.json")["train"])
    assert len(at.get("image")) >= 2 * n_train + 2  # the train pairs, the test input and the truth (+ what came out)
    cfg = rundir.read_json(out / "config.json")
    assert cfg["tasks"] == [TASKS[0]] and cfg["views"] == 2 and cfg["run"] == str(runs_dir / RUN)
    assert rundir.read_json(out / "try.json")["dataset"] == DATASET
    assert (out / "tasks.jsonl").exists() and (out / "submission.json").exists()
    links = [p for p in at.get("page_link")]
    assert any("Open in Predictions" in str(p.proto) for p in links)


def _fake_try(runs_dir: Path, monkeypatch, name: str, policy) -> dict:
    out = tw.tries_root(runs_dir) / name
    make_prediction(monkeypatch, out, base_model="default", views=4, policy=policy, tasks=(TASKS[1],))
    st = rundir.read_json(out / "status.json")
    return {
        "out": str(out),
        "job": str(runs_dir / f"job-{name}"),
        "task": TASKS[1],
        "dataset": DATASET,
        "model": "base model default",
        "views": 4,
        "sample": False,
        "clicked": st["started"] - 1.5,
        "launched": st["started"] - 1.0,
    }


def test_finished_tries_show_right_and_wrong_attempts_with_diffs_and_the_history(runs_dir, monkeypatch):
    right = _fake_try(runs_dir, monkeypatch, "right", lambda tid, view: "right")
    wrong = _fake_try(runs_dir, monkeypatch, "wrong", lambda tid, view: "wrong" if view else "garbage")
    at = page({tw.HISTORY: [wrong, right]}, dataset=DATASET, task=TASKS[1])
    assert not at.exception
    t = texts(at)  # the newest try is shown: every view wrong, view 0 not a grid
    assert "**Test input** · 3×4" in t and "**Truth** · 6×8" in t
    assert "**Attempt 1** · 6×8 · 1 of 4 votes" in t and "**Attempt 2** · 6×8 · 1 of 4 votes" in t
    assert t.count(":red-badge[:material/close: wrong]") == 2 and "right]" not in t
    assert image_captions(at).count("wrong or missing cells crossed") == 2  # the diff of each wrong attempt
    assert "unanswered: row 1 '?? not a grid' is not digits 0-9" in t  # view 0: its raw text instead of a grid
    assert any("?? not a grid" in c.value for c in at.code)
    st = rundir.read_json(Path(wrong["out"]) / "status.json")
    assert f"Result {st['ended'] - wrong['clicked']:.1f} s after the click" in t  # from the click to the end
    assert "This session's tries (2)" in t and "not solved · " in t and "\nsolved · " in t
    at.button(key=f"try_show_{right['out']}").click().run()
    assert not at.exception
    t = texts(at)
    assert "**Attempt 1** · 6×8 · 4 of 4 votes" in t and ":green-badge[:material/check: right]" in t
    assert "cells crossed" not in " ".join(image_captions(at)) and not at.code


def test_a_failed_try_shows_the_error(runs_dir):
    out = tw.tries_root(runs_dir) / "failed"
    out.mkdir(parents=True)
    write_json_atomic(out / "config.json", {"kind": "predict", "tasks": [TASKS[0]]})
    write_json_atomic(
        out / "status.json",
        {
            "status": "failed",
            "error": "PredictError: the model exploded",
            "traceback": "Traceback ...\nPredictError: the model exploded",
        },
    )
    entry = {
        "out": str(out),
        "job": str(runs_dir / "no-such-job"),
        "task": TASKS[0],
        "dataset": DATASET,
        "model": "base model default",
        "views": 4,
        "sample": False,
        "clicked": 0.0,
        "launched": 0.0,
    }
    at = page({tw.HISTORY: [entry]}, dataset=DATASET, task=TASKS[0])
    assert not at.exception
    assert any("the model exploded" in e.value for e in at.error)
