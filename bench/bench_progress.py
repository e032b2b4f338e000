"""Live prediction progress (issue 12), CPU: how soon the first finished task of a prediction is readable.

Launches ``python -m ttft predict --base-model default --dataset arc-agi-1/evaluation --views 8 --out TMP`` (the
embedded model, every task of ARC-AGI-1 evaluation) and polls the prediction folder through
:mod:`ttft.runs.predictions` (what the Predictions page reads) every 20 ms:

* baseline, same run: process start to the first ``status.json`` saying ``running`` (interpreter, imports,
  option checks, dataset load: what any command pays before it can do work);
* process start to the first task's result in ``tasks.jsonl`` (target: under 15 s);
* after ``--window`` seconds of the job (default 45), tasks and views done (status ``done`` / ``views_done``) and
  views per second of the job so far; then SIGTERM: the time to exit, the status, and that the tasks finished
  before the stop are kept (tasks.jsonl, metrics.json and a submission.json with every selected task).

The generation budget is the engine's (:mod:`ttft.engine.views`): a view that never ends generates a whole 30x30
grid's tokens (~930 with the embedded tokenizer); ``--max-new-tokens`` caps it, to time the progress machinery apart
from the budget.

    .venv/bin/python bench/bench_progress.py [--views 8] [--window 45] [--threads 0] [--max-new-tokens 0]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ttft.runs.predictions import read_prediction

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="arc-agi-1/evaluation")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--window", type=float, default=45.0, help="seconds the job runs before it is stopped")
    ap.add_argument("--threads", type=int, default=0, help="--threads of the job (0: torch's default)")
    ap.add_argument(
        "--max-new-tokens",
        type=int,
        default=0,
        help="--max-new-tokens of the job (0: the engine's budget, a 30x30 grid per view)",
    )
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()

    out = Path(tempfile.mkdtemp(prefix="bench_progress_")) / "pred"
    cmd = [
        sys.executable,
        "-m",
        "ttft",
        "predict",
        "--base-model",
        "default",
        "--dataset",
        args.dataset,
        "--views",
        str(args.views),
        "--out",
        str(out),
        "--json",
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.max_new_tokens:
        cmd += ["--max-new-tokens", str(args.max_new_tokens)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.monotonic()
    p = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    t_running = t_first = None
    first_task = None
    try:
        while time.monotonic() - t0 < args.timeout:
            if p.poll() is not None:
                raise SystemExit(f"the prediction exited early ({p.returncode}):\n{p.stderr.read()[-3000:]}")
            ref = read_prediction(out)
            if t_running is None and ref.status.get("status") == "running":
                t_running = time.monotonic() - t0
            if t_running is not None:
                tasks = ref.tasks()
                if tasks:
                    t_first = time.monotonic() - t0
                    first_task = tasks[0]["task"]
                    break
            time.sleep(0.02)
        if t_first is None:
            raise SystemExit(f"no task finished within {args.timeout:.0f} s")
        while time.monotonic() - t0 < args.window and p.poll() is None:
            time.sleep(0.1)
        ref = read_prediction(out)
        elapsed = time.monotonic() - t0
        done, views_done = ref.status.get("done", 0), ref.status.get("views_done")
        total, views_total = ref.status.get("total"), ref.status.get("views_total")
        t_stop = time.monotonic()
        os.killpg(p.pid, signal.SIGTERM)
        stdout, stderr = p.communicate(timeout=args.timeout)
        stop_s = time.monotonic() - t_stop
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    if p.returncode != 0:
        raise SystemExit(f"the prediction failed after SIGTERM ({p.returncode}):\n{stderr[-3000:]}")
    ref = read_prediction(out)
    kept = ref.tasks()
    sub = json.loads((out / "submission.json").read_text())
    metrics = ref.metrics()
    print(f"command: {' '.join(cmd[1:])}")
    print(f"baseline_start_to_status_running_s: {t_running:.2f}")
    print(f"start_to_first_task_readable_s: {t_first:.2f}")
    print(f"status_running_to_first_task_s: {t_first - t_running:.2f}")
    print(f"first_task: {first_task}")
    print(f"window_s: {elapsed:.1f}")
    print(f"tasks_done_in_window: {done}/{total}")
    print(f"views_done_in_window: {views_done}/{views_total}")
    if views_done:
        print(f"views_per_second_of_the_job: {views_done / elapsed:.2f}")
    print(f"sigterm_to_exit_s: {stop_s:.2f}")
    print(f"final_status: {ref.status.get('status')}")
    print(f"tasks_kept_after_stop: {len(kept)}")
    print(f"metrics_n_tasks: {(metrics.get('summary') or {}).get('n_tasks')}")
    print(f"submission_tasks: {len(sub)} (selected {len(ref.config.get('tasks', []))})")


if __name__ == "__main__":
    main()
