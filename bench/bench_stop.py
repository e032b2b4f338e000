"""Stop and loss of a real job (issue 5), on CPU.

Launches real training jobs through the launcher (ttft.jobs.launch: detached supervisor + `python -m ttft train`),
with the embedded model when ttft/assets/model has weights, else the embedded architecture with random weights
(`--init random`: the same step and checkpoint cost), or a tiny model built here with --tiny, and measures:

* stop: time from ttft.jobs.stop() (what the page's Stop button calls: SIGTERM, returns at once) to status.json
  'stopped' (the job finished its step and saved a checkpoint), and to the process being gone. Target < 5 s.
* SIGKILL: after `kill -9` of the job's process, the time until the registry shows 'lost' (target: by the next
  refresh of the page's live panel, which refreshes every second).
* baseline, same run: the median duration of one training step of that job (a stop has to finish the current
  step and write a checkpoint, so it cannot be faster than about one step).

    .venv/bin/python bench/bench_stop.py [--repeats 3] [--threads 1] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from ttft.engine import commands
from ttft.runs import registry

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def tiny_model(d: Path) -> str:
    import torch
    from transformers import LlamaForCausalLM

    from ttft.core.tokenizer import build_embedded_tokenizer
    from ttft.engine.models import tiny_model_config

    torch.manual_seed(0)
    LlamaForCausalLM(tiny_model_config()).save_pretrained(d)
    build_embedded_tokenizer().save_pretrained(d)
    return str(d)


def wait(pred, timeout: float, what: str, every: float = 0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tiny", action="store_true", help="a tiny test model instead of the embedded architecture")
    a = ap.parse_args()

    import numpy as np

    from ttft.engine.models import embedded_model_available
    from ttft.runs import jobs, process
    from ttft.runs import metrics as runmetrics

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.tiny:
            model, init, label = tiny_model(tmp / "tiny"), [], "tiny test model"
        elif embedded_model_available():
            model, init, label = "default", [], "embedded"
        else:
            model, init, label = (
                "default",
                ["--init", "random"],
                "embedded architecture, random init (weights not installed yet)",
            )
        cfg = registry.JobConfig(runs_dir=str(tmp / "runs"), poll_s=0.1, stop_timeout_s=30)
        argv = [
            "train",
            "--base-model",
            model,
            "--dataset",
            "arc-agi-1/evaluation",
            "--tasks",
            "00576224,0c786b71",
            "--steps",
            "100000",
            "--threads",
            str(a.threads),
            "--val",
            "none",
            "--save-steps",
            "100000",
            "--device",
            "cpu",
            *init,
        ]

        def started_job(min_steps: int = 3):
            job = commands.launch_command(argv, cfg)
            wait(lambda: registry.get_job(job.path).step >= min_steps, 300, "the job to train")
            return registry.get_job(job.path)

        to_stopped, to_exit, step_s, ckpt = [], [], [], []
        for _ in range(a.repeats):
            job = started_job()
            pid, start = job.pid, job.raw["pid_start"]
            t0 = time.monotonic()
            jobs.stop(job, cfg, wait=False)
            wait(lambda j=job: registry.get_job(j.path).raw.get("status") == "stopped", 120, "'stopped'")
            to_stopped.append(time.monotonic() - t0)
            wait(lambda p=pid, s=start: not process.process_alive(p, s), 120, "the process to exit")
            to_exit.append(time.monotonic() - t0)
            ckpt.append(job.run.last_checkpoint() is not None)
            t = runmetrics.read_metrics(job.path / "metrics.jsonl").col("time")
            step_s.append(float(np.median(np.diff(t))) if len(t) > 2 else float("nan"))

        job = started_job()
        t0 = time.monotonic()
        os.kill(job.pid, signal.SIGKILL)
        wait(lambda: {j.id: j for j in registry.list_jobs(cfg.root)}[job.id].status == "lost", 60, "'lost'")
        to_lost = time.monotonic() - t0

    print(f"model: {label}")
    print(f"stop_repeats: {a.repeats}")
    print(f"stop_to_stopped_s_median: {statistics.median(to_stopped):.2f}")
    print(f"stop_to_stopped_s_max: {max(to_stopped):.2f}")
    print(f"stop_to_process_exit_s_median: {statistics.median(to_exit):.2f}")
    print(f"checkpoint_saved_on_stop: {all(ckpt)}")
    print(f"baseline_one_step_s_median: {statistics.median(step_s):.3f}")
    print(f"ratio_stop_over_one_step: {statistics.median(to_stopped) / statistics.median(step_s):.1f}")
    print(f"sigkill_to_lost_s: {to_lost:.3f}")
    print(f"sigkill_lost_by_next_panel_refresh_1s: {'yes' if to_lost < 1 else 'NO'}")
    print(f"target_stopped_within_5s: {'yes' if max(to_stopped) < 5 else 'NO'}")


if __name__ == "__main__":
    main()
