"""Real-browser test of the Fine-tune page: launch a tiny job from the form, watch the progress bar advance and the
loss chart appear (the live fragment refreshes by itself), press Stop, see 'stopped'."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import start_streamlit, stop

from ttft.runs import jobs, registry

pytestmark = pytest.mark.browser

TIMEOUT = 60_000
TASKS = "00576224,0c786b71"
STEP = re.compile(r"step (\d+) / 3000")


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.wait_for(timeout=TIMEOUT)
    page.wait_for_function("el => !el.disabled", arg=box.element_handle(), timeout=TIMEOUT)
    box.fill(value)
    box.press("Enter")


def _step(page) -> int:
    return int(STEP.search(page.get_by_text(STEP).first.inner_text()).group(1))


def test_launch_watch_and_stop_a_tiny_job(page, tmp_path, tiny_model):
    runs = tmp_path / "runs"
    runs.mkdir()
    proc, url = start_streamlit(env_extra={"TTFT_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1",
                                           "OMP_NUM_THREADS": "1"})
    try:
        page.goto(f"{url}/Fine-tune", timeout=TIMEOUT)
        page.get_by_text("No runs yet").first.wait_for(timeout=TIMEOUT)
        page.get_by_role("tab", name="Model & LoRA").click()
        page.get_by_text("local folder", exact=True).click()
        _fill(page, "model folder", tiny_model)
        page.get_by_role("tab", name="Data").click()
        _fill(page, "tasks", TASKS)
        page.get_by_role("tab", name="Optimisation").click()
        _fill(page, "steps", "3000")
        _fill(page, "threads", "1")
        page.get_by_text(re.compile(r"--steps 3000 .*--threads 1")).first.wait_for(timeout=TIMEOUT)
        page.get_by_role("button", name="Launch").click()
        page.get_by_text(re.compile(r"Launched \S+-ttft")).first.wait_for(timeout=TIMEOUT)

        # the live panel refreshes by itself: the progress bar advances and the loss chart appears
        page.get_by_text(STEP).first.wait_for(timeout=TIMEOUT)
        page.wait_for_function("() => /step [1-9]\\d* \\/ 3000/.test(document.body.innerText)", timeout=TIMEOUT)
        first = _step(page)
        page.wait_for_function(f"() => {{ const m = document.body.innerText.match(/step (\\d+) \\/ 3000/); "
                               f"return m && +m[1] > {first}; }}", timeout=TIMEOUT)
        page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=TIMEOUT)
        assert page.get_by_text("running", exact=True).count() >= 1
        shots = Path(os.environ.get("TTFT_SCREENSHOT_DIR", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "finetune-running.png"), full_page=True)

        page.get_by_role("button", name="Stop").click()
        page.get_by_text("stopped", exact=True).first.wait_for(timeout=TIMEOUT)
        (job,) = registry.list_jobs(runs)
        assert job.status == "stopped" and 0 < job.step < 3000
        assert job.run.last_checkpoint() is not None
        assert page.locator("[data-testid='stException']").count() == 0
        assert not page.js_errors, page.js_errors
    finally:
        for j in registry.list_jobs(runs):
            if j.active:
                jobs.stop(j, registry.JobConfig(runs_dir=str(runs)), wait=True, timeout=10)
        stop(proc)
