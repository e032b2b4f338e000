"""Prediction benchmark (issue 6), CPU: batched augmented inference against one ``generate`` call per view.

The same view items (K augmented views of the test inputs of a few small ARC-AGI-1 evaluation tasks) are generated
greedily three ways, alternating, median of the repeats:

* batched: ``ttft.predict.run_items`` with the automatic batch size (prompts prefilled in equal-length groups
  without padding, then decoded together, left-padded, with an attention mask and a preallocated KV cache);
* baseline: one plain ``model.generate(input_ids, max_new_tokens=…)`` call per view (transformers' default cache),
  then the same parsing;
* ``run_items`` with batch size 1 (our own path, one view per call: isolates the batching).

Model: the embedded default model when ``ttft/assets/model/config.json`` exists, else a randomly initialised model
of the embedded architecture (``ttft.models.embedded_model_config()``). Target: speed-up >= 3 with identical greedy
outputs.

Threads: by default torch's own default (every core), as ``python -m ttft predict`` runs; ``--threads 1`` pins one.
The batched path's prompt prefill time is printed too: prefill is the same arithmetic in both paths (every view's
prompt must go through the model once), so it bounds the speed-up on one thread.

    .venv/bin/python bench/bench_predict.py [--tasks 4] [--views 8] [--repeats 3] [--threads 0]
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
    ap.add_argument("--threads", type=int, default=0, help="0: torch's default (all cores), as ttft predict")
    ap.add_argument("--batch-size", type=int, default=0, help="0: automatic")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ttft.core.data import load_dataset
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.generate import Generated, load_predictor
    from ttft.engine.models import EMBEDDED_MODEL_DIR, ModelConfig, embedded_model_available
    from ttft.engine.predict import build_items, finish_item, run_items
    from ttft.engine.predict_config import PredictConfig
    from ttft.engine.sources import Source

    trained = (EMBEDDED_MODEL_DIR / "config.json").exists() and embedded_model_available()
    mc = ModelConfig(base_model="default", init="pretrained" if trained else "random")
    pred = load_predictor(Source("base", mc, EncodingConfig(max_seq_len=8192)), "cpu", "float32")
    ds = load_dataset("arc-agi-1/evaluation")
    tasks = [t for t in ds if t.stats().tokens <= args.max_task_tokens][: args.tasks]
    cfg = PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", views=args.views)
    items = [it for t in tasks for it in build_items(t, cfg, pred, 8192)]
    n_gen_max = sum(it.max_new for it in items)

    from ttft.engine import generate

    prefill_s = [0.0]
    _orig_prefill = generate._prefill

    def timed_prefill(*a, **k):
        t = time.perf_counter()
        _orig_prefill(*a, **k)
        prefill_s[0] += time.perf_counter() - t

    generate._prefill = timed_prefill

    def run(bs: int):
        its = copy.deepcopy(items)
        t0 = time.perf_counter()
        calls = run_items(pred, its, bs, cfg)
        return time.perf_counter() - t0, its, calls

    def plain():
        """One plain model.generate call per view, then the same parsing and inverse mapping."""
        its = copy.deepcopy(items)
        t0 = time.perf_counter()
        for it in its:
            ids = torch.as_tensor(it.prompt[None])
            with torch.no_grad():
                out = pred.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    do_sample=False,
                    max_new_tokens=it.max_new,
                    eos_token_id=pred.stop_ids,
                    pad_token_id=pred.pad_id,
                )
            toks = [int(t) for t in out[0, ids.shape[1] :]]
            cut = next((i + 1 for i, t in enumerate(toks) if t in pred.stop_ids), len(toks))
            it.out = Generated(toks[:cut], [], pred.tokenizer.decode(toks[:cut], skip_special_tokens=False))
            finish_item(it, pred)
        return time.perf_counter() - t0, its

    run(args.batch_size)  # warm-up
    plain()
    tb, tp, tu, same_plain, same_own = [], [], [], True, True
    pf = []
    for _ in range(args.repeats):
        prefill_s[0] = 0.0
        t, b_items, b_calls = run(args.batch_size)
        tb.append(t)
        pf.append(prefill_s[0])
        t, p_items = plain()
        tp.append(t)
        t, u_items, u_calls = run(1)
        tu.append(t)
        same_plain &= all(a.out.tokens == b.out.tokens for a, b in zip(b_items, p_items))
        same_own &= all(a.out.tokens == b.out.tokens for a, b in zip(b_items, u_items))
    gen_tokens = sum(len(it.out.tokens) for it in b_items)
    mb, mp, mu = statistics.median(tb), statistics.median(tp), statistics.median(tu)
    print(f"model: {'embedded default (trained)' if trained else 'embedded architecture, random init'}")
    print(f"threads: {torch.get_num_threads()}")
    print(f"tasks: {len(tasks)} ({', '.join(t.id for t in tasks)})")
    print(f"views_per_test_input: {args.views}")
    print(f"view_predictions: {len(items)}")
    print(f"prompt_tokens_mean: {statistics.mean(len(it.prompt) for it in items):.0f}")
    print(f"generated_tokens: {gen_tokens} (budget {n_gen_max})")
    print(f"batched_generate_calls: {b_calls}")
    print(f"baseline_generate_calls: {len(items)}")
    print(f"batched_seconds_median: {mb:.3f}")
    print(f"batched_prompt_prefill_seconds_median: {statistics.median(pf):.3f}")
    print(f"baseline_one_generate_per_view_seconds_median: {mp:.3f}")
    print(f"own_path_batch_size_1_seconds_median: {mu:.3f}")
    print(f"batched_predictions_per_second: {len(items) / mb:.2f}")
    print(f"baseline_predictions_per_second: {len(items) / mp:.2f}")
    print(f"speedup_batched_over_one_generate_per_view: {mp / mb:.2f}")
    print(f"speedup_batched_over_own_batch_size_1: {mu / mb:.2f}")
    print(f"identical_greedy_outputs: {same_plain and same_own}")


if __name__ == "__main__":
    main()
