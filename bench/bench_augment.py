"""Throughput of augment + encode + tokenise on one core over ARC-AGI-1 training (400 tasks).

Usage: ``.venv/bin/python bench/bench_augment.py [--passes N]``. Prints ``name: value`` lines. The process is pinned
to one CPU and thread pools are set to one thread before numpy / tokenizers load. Each figure is the median of N
passes over the 400 tasks; ratios compare against baselines measured in the same run:

* ``json_dumps``: ``json.dumps(task.to_json())`` per task (no augmentation, no tokens);
* ``naive_loop``: a per-cell Python loop that writes the minimal text and looks each character up in a dict.

Target (issue 3): ``augment_encode_tokenize_tasks_per_s >= 2000``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from ttft.core.augment import AugmentOptions, apply_task, random_spec  # noqa: E402
from ttft.core.data import Task, load_dataset  # noqa: E402
from ttft.core.encoding import EncodingConfig, tokenize_task  # noqa: E402
from ttft.core.tokenizer import VOCAB, load_tokenizer  # noqa: E402

TARGET = 2000.0


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu {cpu}"
    return "not pinned (no sched_setaffinity)"


def _rate(tasks: list[Task], fn: Callable[[Task], object], passes: int) -> float:
    """Median tasks per second of ``fn`` over ``passes`` passes."""
    fn(tasks[0])  # warm caches and lazy imports
    rates = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for t in tasks:
            fn(t)
        rates.append(len(tasks) / (time.perf_counter() - t0))
    return statistics.median(rates)


def _naive(task: Task) -> list[int]:
    """Per-cell Python loop: minimal-format text of every grid, then a dict lookup per character."""
    parts = []
    for p in task.train + task.test:
        for marker, g in (("<input>\n", p.input), ("<output>\n", p.output)):
            if g is None:
                continue
            parts.append(marker)
            for row in g.tolist():
                parts.append("".join(str(c) for c in row) + "\n")
    ids = []
    for part in parts:
        if part.startswith("<"):
            ids += [VOCAB[part[:-1]], VOCAB["\n"]]
        else:
            ids += [VOCAB[ch] for ch in part]
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passes", type=int, default=7, help="passes over the dataset per figure (median reported)")
    args = ap.parse_args()
    where = _pin_one_core()
    tasks = list(load_dataset("arc-agi-1/training"))
    opts = AugmentOptions()  # random dihedral + colours 1-9 + train shuffle
    cfg = EncodingConfig()  # minimal format, loss on the test output
    rng = np.random.default_rng(0)
    tok = load_tokenizer()

    def augment(t: Task) -> Task:
        return apply_task(t, random_spec(rng, opts, t))

    figures = {
        "json_dumps_tasks_per_s": _rate(tasks, lambda t: json.dumps(t.to_json()), args.passes),
        "naive_loop_tasks_per_s": _rate(tasks, _naive, args.passes),
        "augment_tasks_per_s": _rate(tasks, augment, args.passes),
        "encode_tokenize_tasks_per_s": _rate(tasks, lambda t: tokenize_task(t, cfg), args.passes),
        "augment_encode_tokenize_tasks_per_s": _rate(tasks, lambda t: tokenize_task(augment(t), cfg), args.passes),
        "augment_encode_tokenize_loaded_tokenizer_tasks_per_s": _rate(
            tasks, lambda t: tokenize_task(augment(t), cfg, tok), args.passes
        ),
        "augment_encode_tokenize_real_tokenizer_call_tasks_per_s": _rate(
            tasks, lambda t: tokenize_task(augment(t), cfg, tok, fast=False), max(1, args.passes // 2)
        ),
    }
    tokens = sum(tokenize_task(t, cfg).n_tokens for t in tasks)
    main_rate = figures["augment_encode_tokenize_tasks_per_s"]
    print(f"dataset: arc-agi-1/training ({len(tasks)} tasks, {tokens} tokens minimal format)")
    print(f"single_core: {where}")
    print(f"passes: {args.passes}")
    for name, value in figures.items():
        print(f"{name}: {value:.0f}")
    print(f"tokens_per_s: {main_rate * tokens / len(tasks):.0f}")
    print(f"ratio_vs_json_dumps: {main_rate / figures['json_dumps_tasks_per_s']:.2f}")
    print(f"ratio_vs_naive_loop: {main_rate / figures['naive_loop_tasks_per_s']:.2f}")
    print(f"target_tasks_per_s: {TARGET:.0f}")
    print(f"target_met: {'yes' if main_rate >= TARGET else 'no'}")


if __name__ == "__main__":
    main()
