"""Server CPU of an idle browser tab (issue 12): the Fine-tune page with finished runs only should cost nothing
measurable (target < 1 % of a core).

Starts ``streamlit run app.py`` headless on a free port with ``TTFT_RUNS_DIR`` pointing at a temporary folder holding
``--runs`` synthesised finished runs (config.json, status.json, metrics.jsonl; half of them per-task runs), opens one
page at a time in headless Debian Chromium (Playwright), waits until it has loaded and settled, then measures the
server process's CPU time (user + system, its children included) over ``--seconds``:

* ``home``: the Home page open (the baseline: a static page, the same server),
* ``finetune``: /Fine-tune with the newest run's panel open,
* ``predictions``: /Predictions,
* ``none``: no tab open (the server alone).

    .venv/bin/python bench/bench_idle.py [--runs 20] [--seconds 60] [--app-dir DIR]

``--app-dir`` runs another checkout's app.py (e.g. an older commit unpacked with ``git archive``) for a
before/after comparison; Streamlit puts the app's folder first on the import path, so its ttft is the one used.
Prints ``name: value`` lines (CPU in percent of one core).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser-test helpers (start_streamlit, CHROMIUM_ARGS)

import conftest  # noqa: E402

TASKS = ("00576224", "0c786b71", "009d5c81", "00dbd492")


def synth_runs(root: Path, n: int, lines: int = 300) -> None:
    """``n`` finished runs as train leaves them (no weights: the pages only read these three files)."""
    from ttft.engine.train_config import TrainConfig
    from ttft.runs.rundir import write_json_atomic

    t0 = time.time() - 86_400
    for i in range(n):
        per_task = i % 2 == 0
        steps = lines // len(TASKS) if per_task else lines
        cfg = TrainConfig(per_task=per_task, steps=steps, tasks=TASKS, device="cpu")
        d = root / f"20250101-{i:06d}-bench"
        d.mkdir(parents=True)
        write_json_atomic(d / "config.json", cfg.to_json())
        rows, t, g = [], t0 + i * 1000, 0
        for task in TASKS if per_task else (None,):
            start = t
            for s in range(1, steps + 1):
                t += 0.5
                r = {
                    "step": g + s,
                    "time": t,
                    "elapsed": t - start,
                    "loss": 2.0 / s**0.3,
                    "lr": 1e-4,
                    "tokens": 300 * s,
                    "tokens_per_second": 600.0,
                }
                if task:
                    r.update(task=task, task_step=s)
                rows.append(r)
            t += 1.0
            rows.append(
                {
                    "step": g + steps,
                    "time": t,
                    "eval_loss": 0.8,
                    "final": True,
                    **({"task": task, "val_loss_before": 1.2} if task else {}),
                }
            )
            g += steps
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "log.txt").write_text("".join(f"step {r['step']} loss {r.get('loss', 0):.4f}\n" for r in rows[-40:]))
        write_json_atomic(
            d / "status.json",
            {
                "status": "finished",
                "step": g,
                "max_steps": g,
                "started": t0 + i * 1000,
                "ended": t,
                "final_loss": rows[-2]["loss"],
                "val_loss": 0.8,
            },
        )


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process and its children (living ones, and the waited-for ones)."""
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            c = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += c.user + c.system + (c.children_user + c.children_system if p is proc else 0.0)
    return total


def measure(proc: psutil.Process, seconds: float) -> float:
    """CPU over ``seconds`` of wall time, in percent of one core."""
    c0, t0 = cpu_seconds(proc), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(proc), time.monotonic()
    return 100.0 * (c1 - c0) / (t1 - t0)


def open_page(browser, url: str, text: str, settle: float):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, timeout=120_000)
    page.get_by_text(text).first.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=stApp]');"
        " return a && a.getAttribute('data-test-script-state') === 'notRunning'; }",
        timeout=120_000,
    )
    time.sleep(settle)  # lazy loads, the first fragment rerun
    exc = page.locator("[data-testid='stException']")
    if exc.count():
        errors.append("the page shows an exception: " + exc.first.inner_text()[:300].replace("\n", " "))
    return ctx, errors


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--app-dir", default=str(ROOT))
    ap.add_argument("--pages", default="none,home,finetune,predictions")
    a = ap.parse_args()

    from playwright.sync_api import sync_playwright

    pages = {
        "home": ("", "ARC test-time fine-tuning workbench"),
        "finetune": ("/Fine-tune", "python -m ttft train"),
        "predictions": ("/Predictions", "Predictions"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        synth_runs(runs, a.runs)
        old_root = conftest.ROOT
        conftest.ROOT = Path(a.app_dir)  # start_streamlit runs app.py from there
        try:
            server, url = conftest.start_streamlit(env_extra={"TTFT_RUNS_DIR": str(runs), "HF_HUB_OFFLINE": "1"})
        finally:
            conftest.ROOT = old_root
        try:
            proc = psutil.Process(server.pid)
            print(f"runs: {a.runs}")
            print(f"seconds: {a.seconds:g}")
            print(f"app_dir: {a.app_dir}")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=conftest.CHROMIUM, args=conftest.CHROMIUM_ARGS)
                results = {}
                for name in a.pages.split(","):
                    if name == "none":
                        time.sleep(a.settle)
                        results[name] = measure(proc, a.seconds)
                    else:
                        path, text = pages[name]
                        ctx, errors = open_page(browser, url + path, text, a.settle)
                        results[name] = measure(proc, a.seconds)
                        for e in errors:
                            print(f"{name}_error: {e}")
                        ctx.close()
                        time.sleep(1.0)
                    print(f"{name}_cpu_pct: {results[name]:.2f}", flush=True)
                browser.close()
            for name in ("finetune", "predictions"):
                if name in results and "home" in results:
                    print(f"{name}_over_home_pct: {results[name] - results['home']:.2f}")
        finally:
            conftest.stop(server)


if __name__ == "__main__":
    main()
