"""DFS sampling benchmark (issue 15), CPU, the embedded model: time per view of ``--decode dfs`` against constrained
greedy decoding in the same run, and how many outputs each view's search finds.

On the first ``--tasks`` ARC-AGI-1 evaluation tasks of at most ``--max-task-tokens`` tokens, one view each, one view
at a time: greedy (``generate``, batch 1, constrained) then DFS at each ``--min-prob`` (constrained, step cap
``STEPS_PER_TOKEN`` x budget). Exactness against exhaustive search is the test's (tests/test_dfs.py). Then poe
scoring's cost: ``--poe-views`` views per task predicted greedily (constrained, batched), and every distinct candidate
re-scored under every view (``ttft.engine.scoring.view_scores``): seconds per candidate and per candidate-view.

    .venv/bin/python bench/bench_dfs.py [--tasks 10] [--min-prob 0.1 0.01] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10)
    ap.add_argument("--max-task-tokens", type=int, default=1200)
    ap.add_argument("--min-prob", type=float, nargs="+", default=[0.1, 0.01])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--poe-views", type=int, default=4)
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ttft.core.data import load_dataset
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.dfs import STEPS_PER_TOKEN, dfs
    from ttft.engine.generate import generate, load_predictor
    from ttft.engine.models import ModelConfig
    from ttft.engine.predict import build_items
    from ttft.engine.predict_config import PredictConfig
    from ttft.engine.sources import Source

    pred = load_predictor(Source("base", ModelConfig(base_model="default"), EncodingConfig()), "cpu", "float32")
    tasks = [t for t in load_dataset("arc-agi-1/evaluation") if t.stats().tokens <= args.max_task_tokens]
    cfg = PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", views=1)
    items = [it for t in tasks[: args.tasks] for it in build_items(t, cfg, pred, 8192) if it.prompt is not None]
    print(f"{len(items)} views of {args.tasks} tasks <= {args.max_task_tokens} tokens")
    g_s, g_lp = [], []
    for it in items:
        t0 = time.perf_counter()
        g = generate(pred, [it.prompt], [it.max_new], constrain=True)[0]
        g_s.append(time.perf_counter() - t0)
        g_lp.append(g.logprob)
    gm = statistics.mean(g_s)
    print(f"greedy (constrained): {gm:.2f} s/view; greedy output probability median {statistics.median(g_lp):.2f} nats")
    for p in args.min_prob:
        d_s, n_out, cut = [], [], 0
        for it in items:
            t0 = time.perf_counter()
            outs, short = dfs(pred, it.prompt, it.max_new, p, True, max_steps=STEPS_PER_TOKEN * it.max_new)
            d_s.append(time.perf_counter() - t0)
            n_out.append(len(outs))
            cut += short
        dm = statistics.mean(d_s)
        print(
            f"dfs P={p}: {dm:.2f} s/view ({dm / gm:.2f}x greedy), outputs/view mean {statistics.mean(n_out):.2f}, "
            f"views with >=1 output {sum(n > 0 for n in n_out)}/{len(items)}, cut short {cut}"
        )
    from ttft.core.voting import vote
    from ttft.engine.predict import run_items
    from ttft.engine.scoring import view_scores

    pcfg = PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", views=args.poe_views)
    n_c = n_cv = 0
    poe_s = 0.0
    for t in tasks[: args.tasks]:
        its = build_items(t, pcfg, pred, 8192)
        run_items(pred, its, 0, pcfg)
        for i in range(len(t.test)):
            vi = sorted((it for it in its if it.test_index == i), key=lambda it: it.view)
            cands = vote([it.grid for it in vi])
            t0 = time.perf_counter()
            view_scores(pred, t, i, [c.grid for c in cands], [it.spec for it in vi], [it.prompt for it in vi], True)
            poe_s += time.perf_counter() - t0
            n_c += len(cands)
            n_cv += len(cands) * len(vi)
    print(
        f"poe ({args.poe_views} views): {n_c} candidates, {poe_s:.1f} s: {poe_s / max(1, n_c):.3f} s/candidate, "
        f"{1e3 * poe_s / max(1, n_cv):.1f} ms per candidate-view"
    )


if __name__ == "__main__":
    main()
