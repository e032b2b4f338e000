"""Live prediction progress (issue 12), CPU: how soon the first finished task of a prediction is readable.

The prediction: ``predict --base-model default --dataset arc-agi-1/evaluation --views 8`` (the embedded model,
every task of ARC-AGI-1 evaluation), its folder polled through :mod:`ttft.runs.predictions` (what the Predictions
page reads) every 20 ms. Two launches, in the same run:

* baseline, ``direct``: ``python -m ttft predict …`` started as a fresh process (what a terminal user runs);
* ``page``: what the Predictions page's New prediction button does — :func:`ttft.engine.commands.launch_prediction`
  queues the job, with the runs folder's warm worker alive (the page keeps one: :mod:`ttft.runs.warm`), so the
  job's process is forked with torch and transformers imported.

For each: launch to the first ``status.json`` saying ``running`` (the job started), launch to the first task's
result in ``tasks.jsonl`` (target: under 15 s of the job starting), and, after ``--window`` seconds, the tasks
and views done; then a stop (SIGTERM; through ``jobs.stop`` for the page's job): the time to exit (generation
checks the stop after every token), the status, and that the tasks finished before the stop are kept
(tasks.jsonl, metrics.json and a submission.json with every selected task).

The generation budget is the engine's (:mod:`ttft.engine.views`): a view that never ends generates a whole 30x30
grid's tokens (~930 with the embedded tokenizer); ``--max-new-tokens`` caps it, to time the progress machinery apart
from the budget.

    .venv/bin/python bench/bench_progress.py [--views 8] [--window 30] [--threads 0] [--max-new-tokens 0]
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ttft.engine.commands import launch_prediction  # noqa: E402
from ttft.engine.predict_config import PredictConfig  # noqa: E402
from ttft.runs import jobs, registry  # noqa: E402
from ttft.runs import warm as runwarm  # noqa: E402
from ttft.runs.predictions import read_prediction  # noqa: E402
from ttft.runs.rundir import SUPERVISOR_FILE  # noqa: E402


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def measure(out: Path, start: Callable[[], None], alive: Callable[[], bool], stop: Callable[[], None], args) -> dict:
    """Poll ``out`` from ``start()`` on: the job running, its first task, the window; then ``stop()`` and wait."""
    t0 = time.monotonic()
    start()
    t_running = t_first = None
    first_task = None
    while time.monotonic() - t0 < args.timeout:
        ref = read_prediction(out)
        state = ref.status.get("status")
        if state in ("failed", "lost"):
            raise SystemExit(f"the prediction ended {state}: {ref.status.get('error')}")
        if t_running is None and state == "running":
            t_running = time.monotonic() - t0
        if t_running is not None and ref.tasks():
            t_first = time.monotonic() - t0
            first_task = ref.tasks()[0]["task"]
            break
        time.sleep(0.02)
    if t_first is None or t_running is None:
        raise SystemExit(f"no task finished within {args.timeout:.0f} s")
    while time.monotonic() - t0 < t_running + args.window and alive():
        time.sleep(0.1)
    ref = read_prediction(out)
    got = {
        "launch_to_running_s": t_running,
        "launch_to_first_task_s": t_first,
        "running_to_first_task_s": t_first - t_running,
        "first_task": first_task,
        "tasks_done_in_window": f"{ref.status.get('done', 0)}/{ref.status.get('total')}",
        "views_done_in_window": f"{ref.status.get('views_done')}/{ref.status.get('views_total')}",
    }
    t_stop = time.monotonic()
    stop()
    while alive() and time.monotonic() - t_stop < args.timeout:
        time.sleep(0.05)
    got["stop_to_exit_s"] = time.monotonic() - t_stop
    end = time.monotonic() + 10  # the final status is written as the process exits
    while read_prediction(out).status.get("status") not in ("stopped", "finished", "failed") and time.monotonic() < end:
        time.sleep(0.05)
    ref = read_prediction(out)
    got["final_status"] = ref.status.get("status")
    got["tasks_kept_after_stop"] = len(ref.tasks())
    got["metrics_n_tasks"] = (ref.metrics().get("summary") or {}).get("n_tasks")
    sub = out / "submission.json"
    got["submission_tasks"] = len(json.loads(sub.read_text())) if sub.exists() else 0
    return got


def options(args) -> dict:
    o = {"base_model": "default", "dataset": args.dataset, "views": args.views}
    if args.threads:
        o["threads"] = args.threads
    if args.max_new_tokens:
        o["max_new_tokens"] = args.max_new_tokens
    return o


def direct(tmp: Path, args) -> dict:
    out = tmp / "direct"
    cmd = [sys.executable, "-m", "ttft", "predict", "--base-model", "default", "--dataset", args.dataset]
    cmd += ["--views", str(args.views), "--out", str(out)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.max_new_tokens:
        cmd += ["--max-new-tokens", str(args.max_new_tokens)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    box: dict = {}

    def start():
        box["p"] = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )

    try:
        return measure(
            out, start, lambda: box["p"].poll() is None, lambda: os.killpg(box["p"].pid, signal.SIGTERM), args
        )
    finally:
        if box["p"].poll() is None:
            os.killpg(box["p"].pid, signal.SIGKILL)


def page(tmp: Path, args) -> dict:
    root = tmp / "runs"
    root.mkdir()
    jc = registry.JobConfig.from_env(runs_dir=str(root))
    os.environ[runwarm.ENABLE_ENV] = "1"
    runwarm.ensure(root)  # what the Predictions page does when it opens
    deadline = time.time() + 180
    while runwarm.info(root) is None and time.time() < deadline:
        time.sleep(0.2)
    worker = runwarm.info(root)
    if worker is None:
        raise SystemExit(f"the warm worker did not start (see {root}/.warm/worker.log)")
    out = root / "pred"
    cfg = PredictConfig(**options(args), out=str(out))
    box: dict = {}

    def start():
        box["job"] = launch_prediction(cfg, jc)["job"]

    def alive():
        return jobs.get_job(root / box["job"]).status in ("queued", "running", "stopping")

    try:
        got = measure(out, start, alive, lambda: jobs.stop(root / box["job"], jc), args)
        got["forked_by_warm_worker"] = "forked by the warm worker" in (root / box["job"] / SUPERVISOR_FILE).read_text(
            errors="replace"
        )
        return got
    finally:
        os.kill(worker["pid"], signal.SIGTERM)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="arc-agi-1/evaluation")
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--window", type=float, default=30.0, help="seconds the job runs (after it starts) before a stop")
    ap.add_argument("--threads", type=int, default=0, help="--threads of the job (0: torch's default)")
    ap.add_argument(
        "--max-new-tokens",
        type=int,
        default=0,
        help="--max-new-tokens of the job (0: the engine's budget, a 30x30 grid per view)",
    )
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_progress_"))
    print(f"load average before: {load_average()}")
    base = direct(tmp, args)
    pg = page(tmp, args)
    print(f"load average after: {load_average()}")
    print(f"options: {options(args)}")
    for name, got in (("direct (baseline: python -m ttft predict, fresh process)", base), ("page", pg)):
        print(f"== {name}")
        for k, v in got.items():
            print(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}")
    print("== ratios (page / direct)")
    for k in ("launch_to_running_s", "launch_to_first_task_s", "running_to_first_task_s", "stop_to_exit_s"):
        print(f"{k}: {pg[k] / max(base[k], 1e-9):.2f}")


if __name__ == "__main__":
    main()
