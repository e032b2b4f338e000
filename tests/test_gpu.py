"""The CUDA paths: device choice, bf16, a LoRA train run on the GPU with its peak memory in the metrics, batched
generation on the GPU, automatic batch size from free GPU memory, and a prediction end to end.

Every test here is marked ``gpu``: conftest skips them, with the reason, where ``torch.cuda.is_available()`` is
False (run only these with ``pytest -m gpu``).
"""

from __future__ import annotations

import copy
import json
import math
import sys

import numpy as np
import pytest
from conftest import run_group

from ttft.core.encoding import EncodingConfig
from ttft.engine.models import ModelConfig
from ttft.runs.rundir import RunDir, read_jsonl

pytestmark = pytest.mark.gpu

TASK = "00576224"  # arc-agi-1/evaluation, small grids
SMALL_TASKS = ("00576224", "0c786b71", "0692e18c")


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ds():
    from ttft.core.data import load_dataset

    return load_dataset("arc-agi-1/evaluation")


@pytest.fixture(scope="module")
def tok():
    from ttft.core.tokenizer import build_embedded_tokenizer

    return build_embedded_tokenizer()


def test_device_choice_and_bf16_on_cuda():
    import torch

    from ttft.engine.models import choose_device, use_bf16

    assert choose_device("auto") == "cuda"
    assert choose_device("cuda") == "cuda" and choose_device("cuda:0") == "cuda:0"
    assert use_bf16("cuda") is torch.cuda.is_bf16_supported()
    assert use_bf16("cuda:0") is torch.cuda.is_bf16_supported()
    assert use_bf16("cpu") is False


def test_lora_train_on_cuda_in_bf16_records_peak_gpu_memory(tiny_model, tmp_path):
    """`ttft train --device cuda`: Trainer in bf16 (where the GPU has it), a LoRA adapter saved, and every step's
    metrics line carries the peak GPU memory (torch.cuda.max_memory_allocated)."""
    import torch

    run_dir = tmp_path / "cuda-lora"
    r = run_group(
        [
            sys.executable,
            "-m",
            "ttft",
            "train",
            "--base-model",
            tiny_model,
            "--mode",
            "ttft",
            "--dataset",
            "arc-agi-1/evaluation",
            "--tasks",
            TASK,
            "--steps",
            "3",
            "--lora-r",
            "4",
            "--device",
            "cuda",
            "--val",
            "auto",
            "--run-dir",
            str(run_dir),
            "--json",
        ],
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = last_json(r.stdout)
    assert out["status"] == "finished" and out["steps"] == 3 and out["train_tokens"] > 0
    assert out["val_loss"] is not None and math.isfinite(out["val_loss"])
    run = RunDir(run_dir)
    man = run.manifest()
    assert man["device"] == "cuda" and man["bf16"] is torch.cuda.is_bf16_supported()
    steps = [m for m in read_jsonl(run.metrics_file) if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3]
    for m in steps:
        assert math.isfinite(m["loss"]), m
        assert "gpu_mem_gb" in m and 0 < m["gpu_mem_gb"] < torch.cuda.get_device_properties(0).total_memory / 2**30
    assert (run_dir / "adapter" / "adapter_config.json").exists()


def test_a_full_finetune_step_on_cuda_in_process(tiny_model, tmp_path):
    """The in-process API (ttft.engine.train.train) on cuda:0 with full fine-tuning."""
    import signal

    from ttft.engine.train import train
    from ttft.engine.train_config import TrainConfig

    cfg = TrainConfig(
        mode="ttft",
        dataset="arc-agi-1/evaluation",
        tasks=(TASK,),
        steps=2,
        device="cuda:0",
        val="none",
        model=ModelConfig(base_model=tiny_model, full_finetune=True),
    )
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        res = train(cfg, run_dir=str(tmp_path / "full"), log=lambda m: None)
    finally:  # train installs its SIGTERM/SIGINT handlers: give pytest its own back
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert res.status == "finished" and res.steps == 2 and res.final_loss is not None
    assert (tmp_path / "full" / "model" / "config.json").exists()
    assert any("gpu_mem_gb" in m for m in read_jsonl(tmp_path / "full" / "metrics.jsonl"))


def test_batched_generation_on_cuda_equals_one_call_per_view(ds, tok):
    """Left padding, the preallocated KV cache and the unpadded prefill on the GPU (float32): the batched greedy
    outputs and their log-probs match one generate call per view."""
    import torch
    from transformers import LlamaForCausalLM

    from ttft.engine.generate import Predictor
    from ttft.engine.models import tiny_model_config
    from ttft.engine.predict import build_items, run_items
    from ttft.engine.predict_config import PredictConfig
    from ttft.engine.sources import Source

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_model_config(initializer_range=0.2)).eval().to("cuda")
    pred = Predictor(model, tok, "cuda", Source("base", ModelConfig(), EncodingConfig()), [2, 4, 5], 0)
    cfg = PredictConfig(base_model="x", dataset="d", views=4)
    items = [it for t in SMALL_TASKS for it in build_items(ds[t], cfg, pred, 4096)]
    assert len({len(it.prompt) for it in items}) >= 3
    one_batch, single = copy.deepcopy(items), copy.deepcopy(items)
    with torch.no_grad():
        assert run_items(pred, one_batch, len(items), cfg) == 1
        assert run_items(pred, single, 1, cfg) == len(items)
    for a, b in zip(one_batch, single):
        assert a.out.tokens == b.out.tokens
        assert len(a.out.tokens) == len(a.out.logprobs) > 0
        assert np.allclose(a.out.logprobs, b.out.logprobs, atol=1e-3)
    assert len({tuple(it.out.tokens) for it in single}) > 1


def test_load_predictor_on_cuda_uses_bf16_and_sizes_batches_from_free_gpu_memory(ds, tiny_model):
    import torch

    from ttft.engine.generate import auto_batch_size, generate, load_predictor
    from ttft.engine.predict import build_items
    from ttft.engine.predict_config import PredictConfig
    from ttft.engine.sources import Source

    pred = load_predictor(
        Source("base", ModelConfig(base_model=tiny_model), EncodingConfig()), device="cuda", dtype="auto"
    )
    p = next(pred.model.parameters())
    assert p.device.type == "cuda"
    assert p.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    assert 1 <= auto_batch_size(pred.model, 2048, "cuda", 1000) <= 256
    assert auto_batch_size(pred.model, 2048, "cuda", 3) <= 3
    items = [
        it
        for it in build_items(ds[TASK], PredictConfig(base_model=tiny_model, dataset="d", views=4), pred, 4096)
        if it.prompt is not None
    ]
    assert items
    outs = generate(pred, [it.prompt for it in items], [it.max_new for it in items])
    assert len(outs) == len(items)
    for it, o in zip(items, outs):
        assert 0 < len(o.tokens) <= it.max_new and len(o.logprobs) == len(o.tokens)
        assert all(math.isfinite(x) and x <= 1e-6 for x in o.logprobs)


def test_predict_cli_on_cuda_with_the_embedded_model(tmp_path):
    out = tmp_path / "pred"
    r = run_group(
        [
            sys.executable,
            "-m",
            "ttft",
            "predict",
            "--base-model",
            "default",
            "--dataset",
            "arc-agi-1/evaluation",
            "--tasks",
            ",".join(SMALL_TASKS),
            "--views",
            "4",
            "--device",
            "cuda",
            "--out",
            str(out),
            "--json",
        ],
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    res = last_json(r.stdout)
    assert res["status"] == "finished" and res["n_tasks"] == len(SMALL_TASKS)
    assert res["val_loss"] is not None and math.isfinite(res["val_loss"])
    views = read_jsonl(out / "predictions.jsonl")
    assert len(views) >= 4 * len(SMALL_TASKS) and {v["task"] for v in views} == set(SMALL_TASKS)
