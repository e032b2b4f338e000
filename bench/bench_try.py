"""Try a run on one task (issue 12): the time from the Try page's click to its result, on CPU.

Launches the prediction job the Try page launches (``ttft.ui.try_widgets.launch_try``: ``launch_prediction`` of
one task, 4 views, the embedded model, val loss, one CPU thread, a fresh runs folder so no other job holds the
slot) and measures the time until the prediction's status is ``finished`` and its files (tasks.jsonl,
predictions.jsonl, metrics.json) read back, with where the time went (launch, queue, process start and imports,
model load + val loss + files, generation). Target: < 10 s for a task under 500 tokens.

Baselines measured in the same run, alternating with the tries:

* ``python -m ttft --version``: a bare process start of the CLI;
* a process that only imports torch and transformers' model classes (the floor of any fresh process);
* the same ``python -m ttft predict …`` command run directly (no queue, no supervisor): what any fresh process
  doing this work costs;
* warm, in this process: the model already loaded, generate the same 4 views + the val loss (what a warm worker
  would cost).

    .venv/bin/python bench/bench_try.py [--task 0c786b71] [--repeats 3] [--views 4] [--threads-compare]

Measured 2026-12-01 on the 2-core development machine, never idle (other engineers' test runs), 0c786b71 (276
tokens), 4 views, budget 94 tokens per view, median of 3 (each try in brackets):

    load 2.5-3.8: try 10.9 s (10.8 / 10.9 / 15.9): launch 0.04, queue 0.5, process start and imports 4.7, model
                  load (transformers' import) + val loss + files 3.7, generation 2.4 s; direct predict 15.5 s
                  (CPU 13.2 s); a process importing torch + transformers only 10.1 s (CPU 9.2 s); warm 3.7 s
    load 4.0-5.6: try 10.8 s (10.9 / 10.8 / 10.1): launch 0.05, queue 0.6, start 4.2, load 3.5, generation 2.1 s
    load 2.6-4.4: try 17.8 s (22.8 / 17.8 / 15.5)
    833dafe3 (490 tokens, budget 424 per view), load 3.9-8: try 44.3 s; generation 19.0 s

Without the page's choices, same machine: torch's default 2 threads, 80 s (load 1.5-5, one try); the engine's
30x30 budget (934 tokens per view, 3 of the 4 views never stop), 44 s (27 / 44 / 58, load 4-5). About 8 s of the
remaining ~11 s is the job's fresh process importing torch and transformers; a warm process (imports and model
loaded) answers in ~3 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ttft.core.data import load_dataset  # noqa: E402
from ttft.engine.commands import launch_prediction, predict_argv  # noqa: E402
from ttft.runs import registry  # noqa: E402
from ttft.runs import warm as runwarm  # noqa: E402
from ttft.runs.predictions import read_prediction  # noqa: E402
from ttft.ui import try_widgets as tw  # noqa: E402

DATASET = "arc-agi-1/evaluation"
MODEL = {"base_model": "default", "label": "base model default"}


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def wait_try(entry: dict, timeout: float = 300.0) -> tuple[str, dict]:
    """Poll like the page (every 50 ms here) until the try has ended and, when finished, its files read back."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status, info = tw.try_state(entry)
        if status in ("finished", "failed", "stopped", "lost"):
            if status != "finished":
                return status, info
            ref = read_prediction(entry["out"])
            if ref.tasks() and ref.views() and ref.metrics():
                return status, info
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for the try {entry['out']}")


def one_try(root: Path, task, views: int, full: bool, threads: int | None = None) -> tuple[float, dict]:
    t0 = time.time()
    if threads is None:
        entry = tw.launch_try(DATASET, task, MODEL, {"views": views, "full_budget": full}, root=root)
    else:  # the page's config with another thread count (to compare)
        out = tw.new_out(task.id, root)
        spec = tw.task_file(task, out, DATASET) or DATASET
        cfg = replace(
            tw.try_config(
                spec,
                task.id,
                base_model="default",
                out=out,
                max_new_tokens=tw.budget_for(task, MODEL, full),
                views=views,
            ),
            threads=threads,
        )
        res = launch_prediction(cfg, registry.JobConfig.from_env(runs_dir=str(root)))
        entry = {
            "out": res["out"],
            "job": str(root / res["job"]),
            "task": task.id,
            "clicked": t0,
            "launched": time.time(),
        }
    status, info = wait_try(entry)
    total = time.time() - t0
    if status != "finished":
        raise SystemExit(f"the try ended {status}: {info.get('error')}\n{info.get('traceback', '')}")
    return total, tw.phases(entry, info, read_prediction(entry["out"]).metrics())


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the process: user + system) of a command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.time() - t0
    if p.returncode:
        raise SystemExit(f"{cmd[:5]} failed:\n{p.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def warm(task, views: int, repeats: int, full: bool) -> tuple[float, float]:
    """(model load s, median generate + val loss s) in this process, with the try's config."""
    import torch

    from ttft.engine import predict as P
    from ttft.engine.generate import load_predictor
    from ttft.engine.sources import resolve_source, select

    cfg = tw.try_config(
        DATASET, task.id, base_model="default", max_new_tokens=tw.budget_for(task, MODEL, full), views=views
    )
    torch.set_num_threads(cfg.threads or torch.get_num_threads())
    t0 = time.time()
    src = resolve_source(cfg)
    _, _, tasks = select(cfg, src)
    pred = load_predictor(src, "cpu", cfg.dtype)
    load_s = time.time() - t0
    times = []
    for _ in range(repeats):
        t1 = time.time()
        items = P.build_items(tasks[0], cfg, pred, 8192)
        P.run_items(pred, items, 0, cfg)
        P.val_losses(pred, tasks[0], 8192)
        times.append(time.time() - t1)
    return load_s, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="0c786b71", help="an arc-agi-1/evaluation task under 500 tokens")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--full-budget",
        action="store_true",
        help="each view may generate a 30x30 grid (the engine's budget) instead of the task-based one",
    )
    ap.add_argument(
        "--threads-compare", action="store_true", help="also time tries with torch's default thread count (threads 0)"
    )
    args = ap.parse_args()
    task = load_dataset(DATASET)[args.task]  # the page has its dataset loaded (cached) when Try is clicked
    s = task.stats()
    if s.tokens >= 500:
        raise SystemExit(f"{args.task} has {s.tokens} tokens: pick a task under 500")
    root = Path(tempfile.mkdtemp(prefix="bench_try_"))
    os.environ["TTFT_RUNS_DIR"] = str(root)
    tw._import_torch()  # what the page's warm_up() does in the background when it opens
    direct_out = root / "direct"
    direct_out.mkdir()
    spec = tw.task_file(task, direct_out, DATASET) or DATASET
    cfg = tw.try_config(
        spec,
        args.task,
        views=args.views,
        base_model="default",
        out=direct_out,
        max_new_tokens=tw.budget_for(task, MODEL, args.full_budget),
    )
    direct_cmd = [sys.executable, "-m", "ttft", *predict_argv(cfg)]
    print(f"task: {args.task} ({s.tokens} tokens, {s.n_test} test input(s), {DATASET})")
    print(
        f"views: {args.views} · embedded model · device {cfg.device} · threads {cfg.threads} · val loss · budget "
        f"{cfg.max_new_tokens or 'the engine default (30x30)'} tokens per view"
    )
    print(f"load_average_before: {load_average()}")

    imports_cmd = [sys.executable, "-c", "import torch; from transformers import LlamaForCausalLM, GenerationConfig"]
    version, imports, imports_cpu, direct, direct_cpu, tries, ph, tries0 = [], [], [], [], [], [], [], []
    for _ in range(args.repeats):
        version.append(timed([sys.executable, "-m", "ttft", "--version"])[0])
        wall, cpu = timed(imports_cmd)
        imports.append(wall)
        imports_cpu.append(cpu)
        t, p = one_try(root, task, args.views, args.full_budget)
        tries.append(t)
        ph.append(p)
        wall, cpu = timed(direct_cmd)
        direct.append(wall)
        direct_cpu.append(cpu)
        if args.threads_compare:
            tries0.append(one_try(root, task, args.views, args.full_budget, threads=0)[0])
    load_s, warm_s = warm(task, args.views, args.repeats, args.full_budget)

    # what the Try page gives: it keeps a warm worker (ttft.runs.warm) that forks the try's process, imports done
    os.environ[runwarm.ENABLE_ENV] = "1"
    runwarm.ensure(root)
    deadline = time.time() + 180
    while runwarm.info(root) is None and time.time() < deadline:
        time.sleep(0.2)
    worker = runwarm.info(root)
    tries_w, ph_w = [], []
    for _ in range(args.repeats if worker else 0):
        t, p = one_try(root, task, args.views, args.full_budget)
        tries_w.append(t)
        ph_w.append(p)
    if worker:
        os.kill(worker["pid"], signal.SIGTERM)

    med = statistics.median
    print(f"baseline_version_process_s: {med(version):.2f}")
    print(
        f"baseline_import_torch_transformers_s: {med(imports):.2f}  (a process that only imports what predicting "
        f"needs; CPU {med(imports_cpu):.2f} s)"
    )
    print(f"baseline_direct_predict_s: {med(direct):.2f}  (python -m ttft predict, same command, no queue)")
    print(
        f"baseline_direct_predict_cpu_s: {med(direct_cpu):.2f}  (its user + system CPU time: about its wall time "
        "on an idle machine)"
    )
    print(f"baseline_warm_generate_s: {warm_s:.2f}  (model loaded in this process; its load took {load_s:.2f} s)")
    if tries_w:
        print(
            f"try_s: {med(tries_w):.2f}  (with the page's warm worker; each: {', '.join(f'{t:.2f}' for t in tries_w)}"
            "; target < 10)"
        )
        for k in tw.PHASE_LABELS:
            vals = [p[k] for p in ph_w if k in p]
            if vals:
                print(f"try_warm_{k}_s: {med(vals):.2f}  ({tw.PHASE_LABELS[k]})")
        print(f"try_over_fresh_process_try: {med(tries_w) / med(tries):.2f}")
    else:
        print("try_s: the warm worker did not start (see <runs>/.warm/worker.log)")
    each = ", ".join(f"{t:.2f}" for t in tries)
    print(f"try_fresh_s: {med(tries):.2f}  (no warm worker: a fresh process; each: {each})")
    for k in tw.PHASE_LABELS:
        vals = [p[k] for p in ph if k in p]
        if vals:
            print(f"try_fresh_{k}_s: {med(vals):.2f}  ({tw.PHASE_LABELS[k]})")
    if tries0:
        print(
            f"try_threads0_s: {med(tries0):.2f}  (torch's default thread count; each: "
            f"{', '.join(f'{t:.2f}' for t in tries0)})"
        )
    print(f"try_fresh_over_direct: {med(tries) / med(direct):.2f}")
    print(f"try_fresh_over_version_process: {med(tries) / med(version):.1f}")
    print(f"try_fresh_over_warm_generate: {med(tries) / warm_s:.1f}")
    print(f"load_average_after: {load_average()}")


if __name__ == "__main__":
    main()
