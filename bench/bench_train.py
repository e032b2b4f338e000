"""Training benchmarks (issue 4), CPU.

1. Overhead: `ttft.engine.train.train()` (Trainer + callbacks + on-the-fly augmentation) tokens/s against a plain
   PyTorch loop (forward, backward, AdamW step) on the same model architecture and the same token stream (the loop
   replays exactly the samples the Trainer drew), measured in one run, alternating, median of the repeats.
   Target: ratio >= 0.95.
2. A CPU test-time fine-tune of the default model: `python -m ttft train --mode ttft --per-task` for 100 steps on a
   few ARC-AGI-1 evaluation tasks in a subprocess: peak RSS (target < 2 GB) and seconds per task; baseline for
   the memory ratio: the peak RSS of a process that only imports torch/transformers/peft.

    .venv/bin/python bench/bench_train.py [--steps 40] [--repeats 3] [--ttft-tasks 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_ttft_train(steps: int, run_dir: Path, seed: int):
    from ttft.core.augment import AugmentOptions
    from ttft.core.encoding import EncodingConfig
    from ttft.engine import samples, train, train_config
    from ttft.engine.models import ModelConfig

    drawn: list[int] = []
    orig = samples.SampleStream.__getitem__

    def recording(self, i):
        drawn.append(int(i))
        return orig(self, i)

    samples.SampleStream.__getitem__ = recording
    try:
        cfg = train_config.TrainConfig(
            mode="finetune",
            dataset="arc-agi-1/training",
            steps=steps,
            lr=1e-3,
            seed=seed,
            val="none",
            save_steps=10_000,
            logging_steps=1,
            max_task_tokens=1500,
            model=ModelConfig(init="random", full_finetune=True),
            encoding=EncodingConfig(max_seq_len=2048, loss_on="outputs"),
            augment=AugmentOptions(),
        )
        t0 = time.perf_counter()
        res = train.train(cfg, run_dir=str(run_dir), log=lambda *a: None)
        wall = time.perf_counter() - t0
    finally:
        samples.SampleStream.__getitem__ = orig
    from ttft.runs.rundir import read_jsonl

    steps_m = [m for m in read_jsonl(run_dir / "metrics.jsonl") if "loss" in m]
    # steady state: from the end of step 1 to the end of the last step
    dt = steps_m[-1]["time"] - steps_m[0]["time"]
    dtok = steps_m[-1]["tokens"] - steps_m[0]["tokens"]
    return cfg, drawn, dtok / dt, res.train_tokens / wall


def run_plain_loop(cfg, drawn: list[int]):
    import torch
    from transformers import LlamaForCausalLM

    from ttft.core import selection
    from ttft.engine import samples
    from ttft.engine.models import embedded_model_config

    _, tasks = selection.select_tasks(cfg.dataset, cfg.tasks, cfg.max_task_tokens)
    sources = [samples.known_pairs_task(t) for t in tasks]
    sources = [t for t in sources if len(t.train) >= 2 and samples.fits_at_all(t, cfg.mode, cfg, None)]
    stream = samples.SampleStream(sources, cfg.mode, cfg.steps, cfg, None)
    batches = [stream[i] for i in drawn]  # the same token stream the Trainer saw
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(embedded_model_config())
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    times, tokens = [], []
    for b in batches:
        t = time.perf_counter()
        ids = torch.tensor([b["input_ids"]])
        labels = torch.tensor([b["labels"]])
        out = model(input_ids=ids, labels=labels, attention_mask=torch.ones_like(ids))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
        tokens.append(len(b["input_ids"]))
    # same steady-state window as the Trainer measurement: steps 2..N
    return sum(tokens[1:]) / sum(times[1:])


def peak_rss_mb(cmd: list[str], env: dict) -> tuple[float, float, subprocess.CompletedProcess]:
    """Peak RSS (MB) and wall time of a child process (RUSAGE_CHILDREN is a max over waited-for children, so each
    measurement runs in its own fresh wrapper process)."""
    wrapper = (
        "import resource, subprocess, sys, time, json; t=time.perf_counter(); "
        "r=subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps({'rc': r.returncode, 'wall': time.perf_counter()-t, "
        "'rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 'out': r.stdout[-2000:], "
        "'err': r.stderr[-2000:]}))"
    )
    r = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    d = json.loads(r.stdout.strip().splitlines()[-1])
    if d["rc"] != 0:
        raise RuntimeError(f"{cmd} failed:\n{d['err']}")
    return d["rss_kb"] / 1024, d["wall"], d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ttft-tasks", type=int, default=3)
    ap.add_argument("--ttft-steps", type=int, default=100)
    ap.add_argument("--skip-overhead", action="store_true")
    args = ap.parse_args()
    import torch

    print(f"torch_threads: {torch.get_num_threads()}")
    if not args.skip_overhead:
        ours, plain, ours_wall = [], [], []
        for r in range(args.repeats):
            with tempfile.TemporaryDirectory() as d:
                cfg, drawn, rate, wall_rate = run_ttft_train(args.steps, Path(d) / "run", seed=r)
            ours.append(rate)
            ours_wall.append(wall_rate)
            plain.append(run_plain_loop(cfg, drawn))
        o, p = statistics.median(ours), statistics.median(plain)
        print(f"overhead_steps_per_repeat: {args.steps}")
        print(f"ttft_train_tokens_per_second: {o:.0f}")
        print(f"ttft_train_tokens_per_second_incl_setup: {statistics.median(ours_wall):.0f}")
        print(f"plain_loop_tokens_per_second: {p:.0f}")
        print(f"ratio_ttft_vs_plain: {o / p:.3f}")
        print("target_ratio: 0.95")
        print(f"meets_target: {o / p >= 0.95}")

    from ttft.core.data import load_dataset
    from ttft.engine.models import embedded_model_available

    ev = load_dataset("arc-agi-1/evaluation")
    small = sorted((t for t in ev if t.stats().tokens <= 1200 and len(t.train) >= 2), key=lambda t: t.id)
    ids = [t.id for t in small[: args.ttft_tasks]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base_mb, _, _ = peak_rss_mb([sys.executable, "-c", "import torch, transformers, peft, ttft.engine.train"], env)
    with tempfile.TemporaryDirectory() as d:
        cmd = [
            sys.executable,
            "-m",
            "ttft",
            "train",
            "--mode",
            "ttft",
            "--per-task",
            "--dataset",
            "arc-agi-1/evaluation",
            "--tasks",
            ",".join(ids),
            "--steps",
            str(args.ttft_steps),
            "--lr",
            "1e-4",
            "--save-steps",
            "1000",
            "--run-dir",
            str(Path(d) / "ttft"),
            "--json",
        ]
        if not embedded_model_available():
            cmd += ["--init", "random"]
        mb, wall, out = peak_rss_mb(cmd, env)
    res = json.loads(out["out"].strip().splitlines()[-1])
    model = "embedded (shipped weights)" if embedded_model_available() else "embedded architecture, random init"
    print(f"ttft_model: {model}")
    print(f"ttft_tasks: {len(ids)} ({','.join(ids)})")
    print(f"ttft_steps_per_task: {args.ttft_steps}")
    print(f"ttft_seconds_per_task: {wall / len(ids):.1f}")
    print(f"ttft_peak_rss_mb: {mb:.0f}")
    print(f"import_only_peak_rss_mb: {base_mb:.0f}")
    print(f"ratio_peak_rss_vs_import_only: {mb / base_mb:.2f}")
    print(f"ttft_val_loss: {res.get('val_loss')}")
    print("target_peak_rss_mb: 2048")
    print(f"meets_target: {mb < 2048}")


if __name__ == "__main__":
    main()
