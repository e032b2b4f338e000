"""Seed-ablation scale-out benchmark (issue 7): the TTFT stage with 1 process against N processes (torchrun).

Runs the same per-task TTFT stage of one ablation row (default ``n-1 + geometric + colour``) on the first
``--limit`` tasks of the default subset three ways, alternating ``--repeats`` times, each timed from launch to the
merged run directory:

* one process with one thread (one "device": the baseline the target is stated against);
* one process with torch's default threads (every core: what ``--gpus 1`` does on a CPU);
* ``--gpus`` processes via ``torchrun --standalone`` (task-parallel shards, one thread each).

Prints ``name: value`` lines: seconds, seconds per task per 100 steps and speed-ups (target >= 1.7 with 2
processes on 2 cores). Also checks each produces one adapter per task.

    .venv/bin/python bench/bench_ablation_scale.py [--limit 8] [--steps 30] [--gpus 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def stage(cfile: Path, run_dir: Path, nproc: int) -> float:
    env = dict(os.environ)
    py = sys.executable
    t0 = time.perf_counter()
    if nproc > 1:
        cmd = [
            py,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(nproc),
            "-m",
            "ttft",
            "train",
            "--config",
            str(cfile),
            "--run-dir",
            str(run_dir),
            "--json",
        ]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(
            [py, "-m", "ttft", "merge-shards", str(run_dir), "--json"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    else:
        subprocess.run(
            [py, "-m", "ttft", "train", "--config", str(cfile), "--run-dir", str(run_dir), "--json"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return time.perf_counter() - t0


def main() -> None:
    from ttft.engine.experiment import select_ids, train_config_for
    from ttft.engine.experiment_config import AblationConfig
    from ttft.runs.rundir import write_json_atomic

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--row", default="n-1 + geometric + colour")
    a = ap.parse_args()

    cfg = AblationConfig(steps=a.steps, limit=a.limit, device="cpu").validate()
    ids = select_ids(cfg)
    tcfg = train_config_for(a.row, cfg, ids)
    tmp = Path(tempfile.mkdtemp(prefix="bench-abl-"))
    cfile = tmp / "train-config.json"
    write_json_atomic(cfile, tcfg.to_json())
    cfile1 = tmp / "train-config-1thread.json"
    write_json_atomic(cfile1, {**tcfg.to_json(), "threads": 1})
    one, many, single = [], [], []
    try:
        for r in range(a.repeats):
            for name, cf, n, acc in (("1t", cfile1, 1, single), ("1p", cfile, 1, one), ("np", cfile, a.gpus, many)):
                d = tmp / f"run-{name}-{r}"
                acc.append(stage(cf, d, n))
                adapters = sorted(p.name for p in (d / "adapters").iterdir()) if (d / "adapters").is_dir() else []
                if len(adapters) != len(ids):
                    print(
                        f"warning: {n} process(es) produced {len(adapters)} adapters for {len(ids)} tasks",
                        file=sys.stderr,
                    )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    s1, sn, st = statistics.median(one), statistics.median(many), statistics.median(single)
    print(f"row: {a.row}")
    print(f"tasks: {len(ids)}")
    print(f"steps: {a.steps}")
    print(f"cpu_cores: {os.cpu_count()}")
    print(f"torch_threads_default: {__import__('torch').get_num_threads()}")
    print(f"one_process_one_thread_s: {st:.1f}")
    print(f"one_process_s: {s1:.1f}")
    print(f"processes_{a.gpus}_s: {sn:.1f}")
    print(f"one_process_s_per_task_per_100_steps: {s1 / len(ids) * 100 / a.steps:.2f}")
    print(f"processes_{a.gpus}_s_per_task_per_100_steps: {sn / len(ids) * 100 / a.steps:.2f}")
    print(f"one_process_one_thread_s_per_task_per_100_steps: {st / len(ids) * 100 / a.steps:.2f}")
    print(f"speedup_{a.gpus}_processes_over_one_single_thread_process: {st / sn:.2f}")
    print(f"speedup_{a.gpus}_processes_over_one_process_all_threads: {s1 / sn:.2f}")


if __name__ == "__main__":
    main()
