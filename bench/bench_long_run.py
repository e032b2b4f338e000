"""Long runs on the Fine-tune page (issue 13): a 100,000-step run against a 1,000-step run, measured in one script.

Synthesises run folders as a training run leaves them (config.json, status.json, metrics.jsonl with a line per step,
lr on each, an eval line every 500 steps): a *finished* run of each size, and a *running* one of each size (its
status names this process as the trainer, and a thread appends one metrics line per second while it is measured).
Each run gets a runs folder of its own, so that what is measured reads only that run. Then:

* ``cold_load``: the Fine-tune page opened with the finished run selected (``?run=``), server time: Streamlit's
  AppTest runs the whole page script (the run's metrics never read before in this process; imports warmed up on
  another runs folder first). Median of ``--repeats``. ``chart_kb`` is the loss figure as sent to the browser, and
  ``unbounded_chart_kb`` what the same figure would be without the downsampling (every step drawn).
* ``browser_load``: the same page in headless Chromium from a ``streamlit run app.py`` server, until the loss chart
  is drawn (server + transfer + Plotly in the browser).
* ``live_refresh``: what one timed rerun of the run panel's fragment costs on the server (the fragment's function
  called directly: ``registry.get_job`` + ``run_panel._panel_body``, the figure serialised as ``st.plotly_chart``
  does), and the runs list's fragment (``registry.list_jobs`` + the table), while the run grows a line per refresh.
  Median of ``--refreshes``.
* ``rss``: the ``streamlit run`` server's resident memory while a Chromium tab has the running run's panel open
  (it refreshes every second, the runs list every 2 s, the run logs a line per second) for ``--rss-minutes``
  (default 2; ``--rss-minutes 10`` for the issue's figure), sampled every 10 s after a 30 s settle; ``ws_kb_s`` is
  what the browser receives over the WebSocket per second. ``--app-dir`` runs another checkout's app.py for these
  browser parts (e.g. the commit before the downsampling, unpacked with ``git archive``).

Every figure is printed for both sizes and as a ratio 100k / 1k.

    .venv/bin/python bench/bench_long_run.py [--steps 100000] [--base-steps 1000] [--rss-minutes 2] [--no-browser]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the browser-test helpers (free_port, CHROMIUM, CHROMIUM_ARGS)

PAGE = "pages/3_Fine-tune.py"


def line(i: int, t: float, rng: random.Random, max_steps: int) -> str:
    rec = {
        "step": i,
        "time": t,
        "elapsed": 0.5 * i,
        "loss": 3.0 * (1 + i) ** -0.2 + 0.1 * rng.random(),
        "lr": 1e-4 * max(0.0, 1 - i / max_steps),
        "grad_norm": rng.random(),
        "epoch": i / 400,
        "tokens": 900 * i,
        "tokens_per_second": 1800 + 100 * rng.random(),
    }
    out = json.dumps(rec, separators=(",", ":")) + "\n"
    if i % 500 == 0:
        out += json.dumps({"step": i, "time": t, "eval_loss": 2.5 * (1 + i) ** -0.2}) + "\n"
    return out


def write_run(root: Path, name: str, steps: int, running: bool) -> Path:
    from ttft.engine.train_config import TrainConfig
    from ttft.runs.rundir import process_start_time, write_json_atomic

    d = root / name
    d.mkdir(parents=True)
    max_steps = 2 * steps if running else steps
    cfg = TrainConfig(steps=max_steps, tasks=("00576224",), device="cpu")
    write_json_atomic(d / "config.json", cfg.to_json())
    rng = random.Random(0)
    t0 = time.time() - 0.5 * steps
    with open(d / "metrics.jsonl", "w") as f:
        for i in range(1, steps + 1):
            f.write(line(i, t0 + 0.5 * i, rng, max_steps))
    status = {"step": steps, "max_steps": max_steps, "started": t0}
    if running:
        status |= {"status": "running", "pid": os.getpid(), "pid_start": process_start_time(os.getpid())}
    else:
        status |= {"status": "finished", "ended": t0 + 0.5 * steps, "final_loss": 0.5}
    write_json_atomic(d / "status.json", status)
    (d / "log.txt").write_text("".join(f"step {i}\n" for i in range(max(1, steps - 20), steps + 1)))
    return d


class Grower:
    """Appends one metrics line per ``every`` seconds to a running run (as its trainer would), in a thread."""

    def __init__(self, run: Path, every: float = 1.0):
        self.run, self.every = run, every
        status = json.loads((run / "status.json").read_text())
        self.i, self.max_steps = int(status["step"]), int(status["max_steps"])
        self.rng = random.Random(1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def grow(self) -> None:
        self.i += 1
        with open(self.run / "metrics.jsonl", "a") as f:
            f.write(line(self.i, time.time(), self.rng, self.max_steps))

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            self.grow()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


# --------------------------------------------------------------------------- server time


def apptest(root: Path, run: str | None):
    from streamlit.testing.v1 import AppTest

    os.environ["TTFT_RUNS_DIR"] = str(root)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page(PAGE)
    if run:
        at.query_params["run"] = run
    return at


def cold_load(root: Path, run: str, repeats: int) -> tuple[float, float]:
    """(median seconds of the page's first load with the run open, the chart's size in kB)."""
    from ttft.runs import metrics as runmetrics

    times, kb = [], 0.0
    for _ in range(repeats):
        runmetrics._READERS.clear()  # the run's metrics never read: a cold load
        at = apptest(root, run)
        t = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t)
        if at.exception:
            raise RuntimeError(f"the page failed: {at.exception}")
        kb = len(at.get("plotly_chart")[0].proto.spec) / 1024
    return statistics.median(times), kb


def unbounded_chart_kb(run: Path) -> float:
    from ttft.runs import metrics as runmetrics
    from ttft.views import charts

    m = runmetrics.MetricsReader(run / "metrics.jsonl").read()
    return len(charts.loss_figure(m, uirevision=run.name, max_points=10**9).to_json()) / 1024


def live_refresh(root: Path, run: Path, refreshes: int) -> tuple[float, float]:
    """(median ms of one panel-fragment rerun, of one runs-list-fragment rerun) while the run grows a line each."""
    import streamlit as st
    import streamlit.logger

    from ttft.runs import registry
    from ttft.ui import jobs_widgets as jw
    from ttft.ui import run_panel as rp

    streamlit.logger.set_log_level("error")  # "no runtime" warnings: the fragment is called bare
    os.environ["TTFT_RUNS_DIR"] = str(root)
    st.session_state["_ft_full_run"] = True  # no st.rerun from a bare call
    grower = Grower(run)
    path = str(run)

    def panel() -> None:  # the body of run_panel's fragment
        j = registry.get_job(path)
        rp._panel_body(j)

    def runs_list() -> None:  # the body of runs_list's live fragment
        jw._table(root, registry.list_jobs(root))

    panel(), runs_list()  # the first read of the file, plotly's validators
    p_ms, l_ms = [], []
    for _ in range(refreshes):
        grower.grow()
        t = time.perf_counter()
        panel()
        p_ms.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        runs_list()
        l_ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(p_ms), statistics.median(l_ms)


# --------------------------------------------------------------------------- a real server and browser


#: the checkout whose app.py the server runs (``--app-dir``: e.g. an older commit, for a before/after comparison;
#: Streamlit puts the app's folder first on the import path, so its ttft is the one the server uses)
APP_DIR = [ROOT]


def start_server(root: Path, log: Path) -> tuple[subprocess.Popen, str]:
    import conftest

    port = conftest.free_port()
    env = {**os.environ, "TTFT_RUNS_DIR": str(root), "HF_HUB_OFFLINE": "1"}
    out = open(log, "w")  # a file, not a pipe: nothing blocks the server however long it logs
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless", "true"],
        cwd=APP_DIR[0],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    conftest.wait_healthy(proc, url, 120, lambda: log.read_text()[-2000:])
    return proc, url


def open_panel(browser, url: str, run: str, ctx=None):
    """A tab with the run's panel open, once its loss chart is drawn: (context, page, seconds, received bytes).
    In ``ctx`` when given (its HTTP cache holds the app's JavaScript already)."""
    ctx = ctx or browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    received = [0]

    def on_ws(ws) -> None:
        ws.on("framereceived", lambda payload: received.__setitem__(0, received[0] + len(payload)))

    page.on("websocket", on_ws)
    t = time.perf_counter()
    page.goto(f"{url}/Fine-tune?run={run}", timeout=300_000)
    page.locator(".js-plotly-plot .scatterlayer, .js-plotly-plot .gl-container").first.wait_for(timeout=300_000)
    page.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=stApp]');"
        " return a && a.getAttribute('data-test-script-state') === 'notRunning'; }",
        timeout=300_000,
    )
    return ctx, page, time.perf_counter() - t, received


def browser_load(pw, root: Path, run: str, tmp: Path) -> float:
    import conftest

    server, url = start_server(root, tmp / f"server-{run}.log")
    try:
        browser = pw.chromium.launch(executable_path=conftest.CHROMIUM, args=conftest.CHROMIUM_ARGS)
        ctx, warm, _, _ = open_panel(browser, url, "warm-up-run")  # server imports, the browser's cache
        warm.close()
        ctx, page, secs, _ = open_panel(browser, url, run, ctx)
        exc = page.locator("[data-testid='stException']")
        if exc.count():
            raise RuntimeError(exc.first.inner_text()[:500])
        ctx.close()
        browser.close()
        return secs
    finally:
        conftest.stop(server)


def rss(pw, root: Path, run: Path, minutes: float, tmp: Path) -> dict:
    """The server's RSS (MB) sampled every 10 s while a tab has the running run's panel open for ``minutes``."""
    import conftest
    import numpy as np
    import psutil

    server, url = start_server(root, tmp / f"server-rss-{run.name}.log")
    try:
        proc = psutil.Process(server.pid)
        browser = pw.chromium.launch(executable_path=conftest.CHROMIUM, args=conftest.CHROMIUM_ARGS)
        with Grower(run):
            ctx, page, _, received = open_panel(browser, url, run.name)
            page.wait_for_timeout(30_000)  # settle (and Playwright delivers the WebSocket events while it waits)
            t0, b0 = time.monotonic(), received[0]
            samples = []
            while True:
                el = time.monotonic() - t0
                samples.append((el, proc.memory_info().rss / 2**20))
                if el >= minutes * 60:
                    break
                page.wait_for_timeout(1000 * min(10.0, minutes * 60 - el + 0.01))
            ws_kb_s = (received[0] - b0) / 1024 / (time.monotonic() - t0)
            exc = page.locator("[data-testid='stException']").count()
            ctx.close()
        browser.close()
    finally:
        conftest.stop(server)
    t, mb = np.array(samples).T
    slope = float(np.polyfit(t / 60, mb, 1)[0]) if len(t) > 2 else float("nan")
    return {
        "start_mb": mb[0],
        "end_mb": mb[-1],
        "max_mb": mb.max(),
        "growth_mb_per_min": slope,
        "ws_kb_s": ws_kb_s,
        "exceptions": exc,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--base-steps", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--refreshes", type=int, default=20)
    ap.add_argument("--rss-minutes", type=float, default=2.0)
    ap.add_argument("--no-browser", action="store_true", help="server time only (no streamlit server, no Chromium)")
    ap.add_argument("--app-dir", default=str(ROOT), help="the checkout whose app.py the server (browser parts) runs")
    a = ap.parse_args()
    APP_DIR[0] = Path(a.app_dir)

    import streamlit.logger

    streamlit.logger.set_log_level("error")  # "no runtime" warnings: the live refresh calls the fragment bare
    sizes = {"long": a.steps, "base": a.base_steps}
    res: dict[str, dict[str, float]] = {k: {} for k in sizes}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        t = time.perf_counter()
        warm = tmp / "warm"
        write_run(warm, "warm-up-run", 50, running=False)
        runs = {}
        for k, n in sizes.items():
            runs[k] = {
                "finished": write_run(tmp / f"{k}-finished", f"finished-{n}", n, running=False),
                "running": write_run(tmp / f"{k}-running", f"running-{n}", n, running=True),
            }
            write_run(tmp / f"{k}-finished", "warm-up-run", 50, running=False)  # the browser's warm-up page
        print(f"steps: {a.steps} (baseline {a.base_steps})")
        print(f"synthesised_s: {time.perf_counter() - t:.1f}", flush=True)

        apptest(warm, "warm-up-run").run()  # imports, the dataset list, plotly: not part of either figure
        for k in ("base", "long"):
            r = runs[k]["finished"]
            res[k]["cold_load_s"], res[k]["chart_kb"] = cold_load(r.parent, r.name, a.repeats)
            res[k]["unbounded_chart_kb"] = unbounded_chart_kb(r)
            r = runs[k]["running"]
            res[k]["live_panel_refresh_ms"], res[k]["live_list_refresh_ms"] = live_refresh(r.parent, r, a.refreshes)
            for key in ("cold_load_s", "chart_kb", "unbounded_chart_kb", "live_panel_refresh_ms"):
                print(f"{k}_{key}: {res[k][key]:.3f}", flush=True)
            print(f"{k}_live_list_refresh_ms: {res[k]['live_list_refresh_ms']:.3f}", flush=True)
        if not a.no_browser:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                for k in ("base", "long"):
                    r = runs[k]["finished"]
                    res[k]["browser_load_s"] = browser_load(pw, r.parent, r.name, tmp)
                    print(f"{k}_browser_load_s: {res[k]['browser_load_s']:.2f}", flush=True)
                for k in ("base", "long"):
                    r = runs[k]["running"]
                    out = rss(pw, r.parent, r, a.rss_minutes, tmp)
                    for key, v in out.items():
                        res[k][f"rss_{key}"] = v
                        print(f"{k}_rss_{key}: {v:.2f}", flush=True)
    print(f"rss_minutes: {a.rss_minutes:g}")
    for key in res["long"]:
        b = res["base"].get(key)
        if key in ("rss_growth_mb_per_min", "rss_exceptions"):  # near 0 for both: a ratio says nothing
            print(f"long_minus_base_{key}: {res['long'][key] - (b or 0):+.2f}")
        elif b:
            print(f"ratio_long_over_base_{key}: {res['long'][key] / b:.2f}")
    long = res["long"]
    print(f"target_cold_load_under_3s: {'yes' if long['cold_load_s'] < 3 else 'NO'}")
    print(f"target_live_refresh_under_100ms: {'yes' if long['live_panel_refresh_ms'] < 100 else 'NO'}")
    if "rss_growth_mb_per_min" in long:
        flat = long["rss_growth_mb_per_min"] < max(1.0, 2 * abs(res["base"]["rss_growth_mb_per_min"]))
        print(f"target_rss_flat: {'yes' if flat else 'NO'} ({long['rss_growth_mb_per_min']:+.2f} MB/min)")


if __name__ == "__main__":
    main()
