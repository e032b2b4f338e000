"""The research loop in a real browser, from a cold start (issue 12): a task in Tasks → fine-tune this task (a few
steps, the task preselected) → Predict from the finished run's panel → the prediction on Predictions with the
task's train pairs and a download; the sidebar keeps the task; "← All tasks" returns to the table."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from conftest import start_streamlit, stop

from ttft.runs import jobs, registry
from ttft.runs.predictions import find_predictions

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
]

TIMEOUT = 90_000
TASK = "00576224"


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True).filter(visible=True).first
    box.wait_for(timeout=TIMEOUT)
    page.wait_for_function("el => !el.disabled", arg=box.element_handle(), timeout=TIMEOUT)
    box.fill(value)
    box.press("Enter")


def _wait(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_task_to_finetune_to_predict_to_inspect(page, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    shots = Path(os.environ.get("TTFT_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    proc, url = start_streamlit(env_extra={"TTFT_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    try:
        # a task, cold, by deep link
        page.goto(f"{url}/Tasks?dataset=arc-agi-1/evaluation&task={TASK}", timeout=TIMEOUT)
        page.get_by_text(f"Task {TASK}").first.wait_for(timeout=TIMEOUT)

        # the sidebar keeps the task: Augmentations opens on it
        page.get_by_role("link", name="Augmentations").first.click()
        page.get_by_text(f"Augmentations · {TASK}").first.wait_for(timeout=TIMEOUT)
        page.get_by_role("link", name="Open in Tasks").first.click()  # and back to the task
        page.get_by_text(f"Task {TASK}").first.wait_for(timeout=TIMEOUT)

        # fine-tune this task: the form arrives with the task preselected
        page.get_by_role("link", name="Fine-tune on this task").click()
        page.get_by_text(f"Task {TASK} is preselected").first.wait_for(timeout=TIMEOUT)
        page.get_by_role("tab", name="Optimisation").click()  # the embedded default model: 3 steps take seconds
        _fill(page, "steps", "3")
        _fill(page, "threads", "1")
        page.get_by_text(re.compile(rf"--tasks {TASK} .*--steps 3 ")).first.wait_for(timeout=TIMEOUT)
        page.get_by_role("button", name="Launch", exact=True).click()
        page.get_by_text(re.compile(r"Launched \S+-ttft")).first.wait_for(timeout=TIMEOUT)
        (job,) = _wait(
            lambda: [j for j in registry.list_jobs(runs) if j.status == "finished"] or None,
            240,
            "the fine-tune to finish",
        )
        assert job.step == 3 and job.config()["tasks"] == [TASK]
        page.get_by_role("link", name="Predict").first.wait_for(timeout=TIMEOUT)  # the live panel refreshed
        page.screenshot(path=str(shots / "loop-finetune.png"), full_page=True)

        # Predict from the run's panel: its dataset and task are preselected
        page.get_by_role("link", name="Predict").first.click()
        page.get_by_role("button", name="Launch prediction").wait_for(timeout=TIMEOUT)
        page.get_by_text(re.compile(rf"--tasks {TASK}")).first.wait_for(timeout=TIMEOUT)
        page.get_by_role("button", name="Launch prediction").click()
        ref = _wait(
            lambda: next((r for r in find_predictions(runs) if r.state == "finished"), None),
            240,
            "the prediction to finish",
        )
        assert ref.source_run is not None and Path(ref.source_run).name == job.id

        # it is on the page (refreshed by itself), with its task view: train pairs, attempts, downloads
        page.locator(".st-key-pred_open_btn button").wait_for(timeout=TIMEOUT)
        page.get_by_role("button", name=re.compile("submission.json")).first.wait_for(timeout=TIMEOUT)  # downloads
        _fill(page, "Open a task", TASK)  # type the id into the picker and take it (Enter)
        page.locator(".st-key-pred_open_btn button").click()
        page.get_by_text("Train pairs").first.wait_for(timeout=TIMEOUT)
        page.screenshot(path=str(shots / "loop-prediction-task.png"), full_page=True)

        # "← All tasks" goes back to the table, and stays there
        page.get_by_role("button", name="← All tasks").first.click()
        page.locator(".st-key-pred_open_btn button").wait_for(timeout=TIMEOUT)
        page.wait_for_timeout(1500)
        assert page.get_by_text("Train pairs").count() == 0
        assert page.locator("[data-testid='stException']").count() == 0
        assert not page.js_errors, page.js_errors
    except Exception:
        page.screenshot(path=str(shots / "loop-failed.png"), full_page=True)  # where it stopped, to look at
        raise
    finally:
        for j in registry.list_jobs(runs):
            if j.active:
                jobs.stop(j, registry.JobConfig(runs_dir=str(runs)), wait=True, timeout=10)
        stop(proc)
