"""Grid-constrained decoding benchmark (issue 15), CPU, the embedded model ("default" base model): unanswered views and
cost per generated token, constrained against unconstrained greedy decoding in the same run.

On the first ``--tasks`` of the ARC-AGI-1 evaluation tasks of at most ``--max-task-tokens`` tokens (172 tasks at
1,200), one view each (the identity), one view per generate call (batch size 1, so a view's cost does not depend on
the others of its batch):

* constrained: ``ttft predict``'s default (``GridConstraint``), at the full budget of a 30x30 grid;
* unconstrained, full budget: the fraction of unanswered views as ``--no-constrain`` gives it;
* unconstrained, matched: every view stopped after as many tokens as its constrained run generated (same lengths,
  same positions), so the two per-token costs compare the same work: the ratio is the constraint's overhead.

    .venv/bin/python bench/bench_constrain.py [--tasks 20] [--threads 1]     # about 10 minutes on one thread
    .venv/bin/python bench/bench_constrain.py --tasks 172                    # all 172 (unconstrained ~1 h per 120)
    .venv/bin/python bench/bench_constrain.py --tasks 172 --skip-full       # constrained + matched only
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--max-task-tokens", type=int, default=1200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-full", action="store_true", help="skip the unconstrained full-budget run")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ttft.core.data import load_dataset
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.generate import load_predictor
    from ttft.engine.models import ModelConfig
    from ttft.engine.predict import build_items, run_items
    from ttft.engine.predict_config import PredictConfig
    from ttft.engine.sources import Source

    pred = load_predictor(Source("base", ModelConfig(base_model="default"), EncodingConfig()), "cpu", "float32")
    ds = load_dataset("arc-agi-1/evaluation")
    eligible = [t for t in ds if t.stats().tokens <= args.max_task_tokens]
    tasks = eligible[: args.tasks]
    print(f"{len(tasks)} of the {len(eligible)} evaluation tasks <= {args.max_task_tokens} tokens, 1 view each")

    def run(constrain: bool, budgets: list[int] | None = None):
        cfg = PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", views=1, constrain=constrain)
        items = [it for t in tasks for it in build_items(t, cfg, pred, 8192)]
        if budgets is not None:
            for it, b in zip(items, budgets):
                it.max_new = b
        t0 = time.perf_counter()
        run_items(pred, items, 1, cfg)
        dt = time.perf_counter() - t0
        n_tok = sum(len(it.out.tokens) for it in items if it.out)
        gen = [it for it in items if it.prompt is not None]
        unans = sum(not it.ok for it in gen) / max(1, len(gen))
        return items, dt, n_tok, unans

    ci, ct, cn, cu = run(True)
    print(
        f"constrained:            unanswered {100 * cu:5.1f}%  {cn} tokens  {ct:7.1f} s  {1e3 * ct / cn:.2f} ms/token"
    )
    budgets = [len(it.out.tokens) if it.out else it.max_new for it in ci]
    mi, mt, mn, _ = run(False, copy.copy(budgets))
    print(f"unconstrained, matched: {'':16s}  {mn} tokens  {mt:7.1f} s  {1e3 * mt / mn:.2f} ms/token")
    ratio = (ct / cn) / (mt / mn)
    print(f"cost per generated token, constrained / unconstrained (matched lengths): {ratio:.3f}x (target <= 1.15x)")
    if not args.skip_full:
        _, ft, fn, fu = run(False)
        print(
            f"unconstrained, full:    unanswered {100 * fu:5.1f}%  {fn} tokens  {ft:7.1f} s  "
            f"{1e3 * ft / fn:.2f} ms/token"
        )
    print("all 172: .venv/bin/python bench/bench_constrain.py --tasks 172 [--skip-full]")


if __name__ == "__main__":
    main()
