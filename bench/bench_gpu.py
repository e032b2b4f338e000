"""The GPU checks in one prepared script (issue 15): run it where ``torch.cuda.is_available()``; elsewhere it says
so and exits 0 (``--device cpu --shape tiny`` runs every part on CPU, small, to check the script itself).

1. **Baseline, same run**: the device's bf16 matmul throughput (a 4096³ matmul loop): what the hardware gives.
2. **LoRA training throughput and MFU** of a Qwen2-0.5B-shaped model built from its configuration (random
   weights, nothing downloaded: hidden 896, 24 layers, 14 heads, 2 KV heads, MLP 4864, vocabulary 151,936, tied
   embeddings) with the embedded tokenizer: ``python -m ttft train --mode ttft`` on ARC-AGI-1 evaluation tasks
   (bf16 on CUDA, ttft's own Trainer path), its ``train_tokens_per_second`` from ``--json``. MFU = 6 × parameters
   × tokens/s over the peak (``--peak-tflops``, default from the device name; the same figure over the measured
   matmul throughput is printed too). LoRA's backward skips the frozen weights' gradients, so 6N counts the work
   a full fine-tune would do: the usual convention, an upper bound on the useful FLOPs.
3. **Train → predict smoke on the device**: the run of 2. predicted (``python -m ttft predict --run``), status
   ``finished``.
4. **Batched prediction throughput** of the embedded model: greedy (the baseline), DFS (``--decode dfs
   --min-prob 0.1``), greedy + ``--score poe``, as predictions per second (``--json``), with ratios to greedy.

    .venv/bin/python bench/bench_gpu.py [--device cuda] [--shape qwen2-0.5b] [--steps 20] [--tasks 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {
    "qwen2-0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
        max_position_embeddings=32768,
        rope_theta=1000000.0,
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
    ),
}
#: dense bf16 peak TFLOPs by device name (NVIDIA's data sheets; SXM parts)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "4090": 165.0}


def peak_for(name: str) -> float | None:
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def matmul_tflops(device: str, n: int, seconds: float = 3.0) -> float:
    import torch

    dt = torch.bfloat16 if device.startswith("cuda") else torch.float32
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        a @ b
        k += 1
        if k % 10 == 0:
            sync()
    sync()
    return 2 * n**3 * k / (time.perf_counter() - t0) / 1e12


def build_model(shape: str, folder: Path) -> int:
    """A randomly initialised Qwen2 model of ``shape`` saved with the embedded tokenizer; its parameter count."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from ttft.core.tokenizer import build_embedded_tokenizer

    tok = build_embedded_tokenizer()
    cfg = Qwen2Config(
        **SHAPES[shape], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def ttft(*args: str, timeout: float = 3600) -> dict:
    r = subprocess.run(
        [sys.executable, "-m", "ttft", *args, "--json"],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TTFT_WARM_WORKER": "0"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise SystemExit(f"python -m ttft {' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shape", default="qwen2-0.5b", choices=sorted(SHAPES))
    ap.add_argument("--steps", type=int, default=20, help="training steps of part 2")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=40, help="ARC-AGI-1 evaluation tasks predicted in part 4")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--matmul", type=int, default=4096)
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here (torch.cuda.is_available() is False): nothing measured.")
        print("Run it on a machine with a GPU; --device cpu --shape tiny checks the script itself.")
        return
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    peak = args.peak_tflops or peak_for(name)
    print(f"device: {name} · torch {torch.__version__} · shape {args.shape}")

    mm = matmul_tflops(args.device, args.matmul if args.device.startswith("cuda") else 512)
    print(f"baseline_matmul_tflops: {mm:.3g}  ({'bf16' if args.device.startswith('cuda') else 'fp32'} matmul loop)")

    from ttft.core.data import load_dataset

    ds = load_dataset("arc-agi-1/evaluation")
    small = ",".join(ds.ids[:8])
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        tmp_p = Path(tmp)
        n_params = build_model(args.shape, tmp_p / "model")
        print(f"model_parameters: {n_params / 1e6:.1f} M (random weights)")
        run = tmp_p / "run"
        res = ttft(
            "train",
            "--base-model",
            str(tmp_p / "model"),
            "--dataset",
            "arc-agi-1/evaluation",
            "--tasks",
            small,
            "--mode",
            "ttft",
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--val",
            "none",
            "--device",
            args.device,
            "--run-dir",
            str(run),
        )
        tps = float(res.get("train_tokens_per_second") or 0.0)
        flops = 6 * n_params * tps / 1e12
        print(f"train_status: {res.get('status')} · steps {res.get('steps')} · tokens {res.get('train_tokens')}")
        print(f"train_tokens_per_second: {tps:,.0f}")
        print(f"train_model_tflops: {flops:.3g}  (6 x parameters x tokens/s)")
        print(f"train_over_matmul: {flops / mm:.3f}")
        print(f"mfu: {flops / peak:.3f}  (peak {peak} TFLOPs)" if peak else "mfu: unknown peak (pass --peak-tflops)")
        smoke = ttft("predict", "--run", str(run), "--tasks", ",".join(ds.ids[:2]), "--views", "8")
        print(f"train_to_predict_smoke: {smoke.get('status')} · {smoke.get('n_tasks')} task(s) on {args.device}")

        subset = ",".join(ds.ids[: args.tasks])
        common = ["predict", "--base-model", "default", "--dataset", "arc-agi-1/evaluation", "--tasks", subset]
        common += ["--views", "8", "--no-val-loss", "--device", args.device]
        rows = {
            "greedy": [],
            "dfs (min_prob 0.1)": ["--decode", "dfs", "--min-prob", "0.1"],
            "greedy + poe": ["--score", "poe"],
        }
        got = {}
        for label, extra in rows.items():
            out = tmp_p / ("pred-" + label.split()[0] + ("-poe" if "poe" in label else ""))
            r = ttft(*common, *extra, "--out", str(out))
            got[label] = float(r.get("predictions_per_second") or 0.0)
            print(f"predict_{label}: {got[label]:.2f} predictions/s · pass@2 {r.get('pass_at_2')}")
        for label, v in got.items():
            print(f"ratio_{label}_over_greedy: {v / max(got['greedy'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
