"""Prediction benchmark (issue 6), CPU: batched augmented inference against one ``generate`` call per view.

The same view items (K augmented views of the test inputs of a few small ARC-AGI-1 evaluation tasks) are generated
greedily twice: batched (``ttft.predict.run_items`` with the automatic batch size: left padding, attention mask,
KV cache) and one view per ``model.generate`` call (batch size 1, no padding). Model: the embedded default model
when ``ttft/assets/model/config.json`` exists, else a randomly initialised model of the embedded architecture
(``ttft.models.embedded_model_config()``). Target: ratio >= 3 with identical greedy outputs.

    .venv/bin/python bench/bench_predict.py [--tasks 4] [--views 8] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
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
    ap.add_argument("--tasks", type=int, default=4, help="small evaluation tasks to predict")
    ap.add_argument("--max-task-tokens", type=int, default=400)
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=0, help="0: automatic")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ttft.data import load_dataset
    from ttft.models import EMBEDDED_MODEL_DIR, ModelConfig, embedded_model_available
    from ttft.predict import PredictConfig, Source, build_items, load_predictor, run_items
    from ttft.encoding import EncodingConfig

    trained = (EMBEDDED_MODEL_DIR / "config.json").exists() and embedded_model_available()
    mc = ModelConfig(base_model="default", init="pretrained" if trained else "random")
    pred = load_predictor(Source("base", mc, EncodingConfig(max_seq_len=8192)), "cpu", "float32")
    ds = load_dataset("arc-agi-1/evaluation")
    tasks = [t for t in ds if t.stats().tokens <= args.max_task_tokens][: args.tasks]
    cfg = PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", views=args.views)
    items = [it for t in tasks for it in build_items(t, cfg, pred, 8192)]
    n_gen_max = sum(it.max_new for it in items)

    def run(bs: int):
        its = copy.deepcopy(items)
        t0 = time.perf_counter()
        calls = run_items(pred, its, bs, cfg)
        return time.perf_counter() - t0, its, calls

    run(args.batch_size)  # warm-up
    tb, tu, same = [], [], True
    for _ in range(args.repeats):
        t, b_items, b_calls = run(args.batch_size)
        tb.append(t)
        t, u_items, u_calls = run(1)
        tu.append(t)
        same &= all(a.out.tokens == b.out.tokens for a, b in zip(b_items, u_items))
    gen_tokens = sum(len(it.out.tokens) for it in b_items)
    mb, mu = statistics.median(tb), statistics.median(tu)
    print(f"model: {'embedded default (trained)' if trained else 'embedded architecture, random init'}")
    print(f"threads: {args.threads}")
    print(f"tasks: {len(tasks)} ({', '.join(t.id for t in tasks)})")
    print(f"views_per_test_input: {args.views}")
    print(f"view_predictions: {len(items)}")
    print(f"prompt_tokens_mean: {statistics.mean(len(it.prompt) for it in items):.0f}")
    print(f"generated_tokens: {gen_tokens} (budget {n_gen_max})")
    print(f"batched_generate_calls: {b_calls}")
    print(f"unbatched_generate_calls: {u_calls}")
    print(f"batched_seconds_median: {mb:.3f}")
    print(f"unbatched_seconds_median: {mu:.3f}")
    print(f"batched_predictions_per_second: {len(items) / mb:.2f}")
    print(f"unbatched_predictions_per_second: {len(items) / mu:.2f}")
    print(f"speedup_batched_over_unbatched: {mu / mb:.2f}")
    print(f"identical_greedy_outputs: {same}")


if __name__ == "__main__":
    main()
