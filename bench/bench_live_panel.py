"""Live panel refresh cost (issue 5): the Fine-tune page's data path for one refresh of a run's panel — read
metrics.jsonl + build the loss figure + serialise it (what st.plotly_chart sends) — on a synthetic 10,000-line
metrics file. Target: < 50 ms with the cache.

Measured in one run, median of repeats:
* baseline: json.loads per line + pandas DataFrame + px.line (what a page without caching would do each refresh)
* cold:     ttft's reader on a file it has never seen + ttft.charts.loss_figure + to_json
* cached:   the panel's path (ttft.ui.jobs_widgets.panel_data: the process's incremental reader of the file),
            file unchanged
* live:     the same while the job appends one line between refreshes (the incremental reader parses only it)

    .venv/bin/python bench/bench_live_panel.py [--lines 10000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from ttft.runs import registry

ROOT = Path(__file__).resolve().parents[1]


def line(i: int, t0: float, rng: random.Random) -> str:
    rec = {
        "step": i,
        "time": t0 + 0.5 * i,
        "loss": 3.0 * (1 + i) ** -0.2 + 0.1 * rng.random(),
        "lr": 1e-4 * (1 - i / 20000),
        "grad_norm": rng.random(),
        "epoch": i / 400,
        "tokens": 900 * i,
        "tokens_per_second": 1800 + 100 * rng.random(),
        "elapsed": 0.5 * i,
    }
    if i % 500 == 0:
        rec["eval_loss"] = 2.5 * (1 + i) ** -0.2
    return json.dumps(rec, separators=(",", ":")) + "\n"


def write_run(d: Path, n: int) -> Path:
    from ttft.runs.rundir import write_json_atomic

    d.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    t0 = time.time() - n
    (d / "metrics.jsonl").write_text("".join(line(i, t0, rng) for i in range(1, n + 1)))
    write_json_atomic(d / "config.json", {"mode": "ttft"})
    write_json_atomic(
        d / "status.json", {"status": "running", "step": n, "max_steps": 2 * n, "pid": os.getpid(), "started": t0}
    )
    return d


def timed(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args()

    import pandas as pd
    import plotly.express as px
    import streamlit.logger

    streamlit.logger.set_log_level("error")  # "no runtime" warnings: the bench calls the page's code bare
    from ttft.runs import metrics as runmetrics
    from ttft.ui import jobs_widgets as jw
    from ttft.views import charts

    with tempfile.TemporaryDirectory() as tmp:
        run = write_run(Path(tmp) / "run", a.lines)
        mfile = run / "metrics.jsonl"

        def baseline():
            rows = [json.loads(ln) for ln in mfile.read_text().splitlines()]
            df = pd.DataFrame(rows)
            px.line(df, x="step", y="loss", log_y=False).to_json()

        def cold():
            m = runmetrics.MetricsReader(mfile).read()
            charts.loss_figure(m, uirevision="run").to_json()

        job = registry.read_job(run)

        def cached():
            m, p, fig = jw.panel_data(job)
            fig.to_json()

        rng = random.Random(1)
        state = {"i": a.lines}

        def live():
            state["i"] += 1
            with open(mfile, "a") as f:
                f.write(line(state["i"], time.time(), rng))
            m, p, fig = jw.panel_data(job)
            fig.to_json()

        baseline(), cold(), cached()  # imports and plotly's validators warm up
        n_points = len(jw.panel_data(job)[2].data[0].x)
        b = timed(baseline, a.repeats)
        c = timed(cold, a.repeats)
        h = timed(cached, a.repeats)
        lv = timed(live, a.repeats)
        print(f"lines: {a.lines}")
        print(f"points_in_chart: {n_points}")
        print(f"baseline_naive_ms: {b:.1f}")
        print(f"cold_ms: {c:.1f}")
        print(f"cached_refresh_ms: {h:.1f}")
        print(f"live_refresh_ms: {lv:.1f}")
        print(f"ratio_baseline_over_cached: {b / h:.1f}")
        print(f"ratio_baseline_over_live: {b / lv:.1f}")
        print(f"target_live_refresh_under_50ms: {'yes' if max(h, lv) < 50 else 'NO'}")


if __name__ == "__main__":
    main()
