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
    proc, url = start_streamlit(env_extra={"TTFT_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
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
        page.wait_for_function(
            f"() => {{ const m = document.body.innerText.match(/step (\\d+) \\/ 3000/); "
            f"return m && +m[1] > {first}; }}",
            timeout=TIMEOUT,
        )
        page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for(timeout=TIMEOUT)
        assert page.get_by_text("running", exact=True).count() >= 1
        shots = Path(os.environ.get("TTFT_SCREENSHOT_DIR", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "finetune-running.png"), full_page=True)

        page.get_by_role("button", name="Stop").click()
        # the runs table's cells hold the same word, hidden (the grid draws on a canvas): wait for a visible one
        page.get_by_text("stopped", exact=True).filter(visible=True).first.wait_for(timeout=TIMEOUT)
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


def test_idle_page_follows_the_runs_folder_and_links_to_predict(page, tmp_path):
    """With finished runs only the page redraws nothing on a timer, yet a run added by command line and a status
    written by a job show by themselves; the newest log line is on screen; Predict links to the Predictions page."""
    import json
    import time as _time
    from urllib.parse import parse_qs, urlparse

    from test_app_finetune import PT_TASKS, per_task_metrics

    from ttft.engine.train_config import TrainConfig
    from ttft.runs.rundir import write_json_atomic

    runs = tmp_path / "runs"

    def make(name: str, status: dict) -> Path:
        d = runs / name
        d.mkdir(parents=True)
        write_json_atomic(d / "config.json", TrainConfig(per_task=True, steps=4, tasks=PT_TASKS).to_json())
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in per_task_metrics()))
        write_json_atomic(d / "status.json", status)
        return d

    first = make(
        "20250101-000000-first",
        {"status": "finished", "step": 8, "max_steps": 8, "val_loss": 0.9, "started": 1000.0, "ended": 1013.0},
    )
    (first / "log.txt").write_text("".join(f"log line {i}\n" for i in range(100)))
    proc, url = start_streamlit(env_extra={"TTFT_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1"})
    try:
        page.goto(f"{url}/Fine-tune?run={first.name}", timeout=TIMEOUT)
        page.get_by_text("Means over the 2 of 2 tasks done").first.wait_for(timeout=TIMEOUT)
        # the log's newest line is on screen: the block shows all its lines, no scrolling inside it
        page.get_by_text("Log", exact=True).first.click()
        last = page.get_by_text("log line 99").first
        last.wait_for(timeout=TIMEOUT)
        no_scroll = "el => { const p = el.closest('pre') || el; return p.scrollHeight <= p.clientHeight + 2; }"
        assert page.evaluate(no_scroll, last.element_handle())
        # a run added by command line appears by itself
        t0 = _time.time()
        make("20250102-000000-second", {"status": "finished", "step": 8, "max_steps": 8})
        page.locator("text=20250102-000000-second").first.wait_for(state="attached", timeout=TIMEOUT)
        appeared_s = _time.time() - t0
        # a status written by the job shows by itself (the panel of the run shown)
        write_json_atomic(
            first / "status.json", {"status": "failed", "error": "RuntimeError: late", "step": 8, "max_steps": 8}
        )
        page.get_by_text("Failed: RuntimeError: late").first.wait_for(timeout=TIMEOUT)
        assert appeared_s < 30, f"the new run appeared after {appeared_s:.1f} s (the watcher polls every 5 s)"
        assert page.locator("[data-testid='stException']").count() == 0
        write_json_atomic(first / "status.json", {"status": "finished", "step": 8, "max_steps": 8})
        page.get_by_text("Failed: RuntimeError: late").first.wait_for(state="detached", timeout=TIMEOUT)
        # Predict (a finished run): opens the Predictions page with the run and its New-prediction form asked for
        link = page.get_by_role("link", name="Predict", exact=True)
        href = urlparse(link.get_attribute("href"))
        assert href.path.endswith("Predictions") and parse_qs(href.query) == {"run": [str(first)], "new": ["1"]}
        link.click()
        page.wait_for_function("() => location.pathname.endsWith('/Predictions')", timeout=TIMEOUT)
        assert not page.js_errors, page.js_errors
    finally:
        stop(proc)
