"""Test helpers for predictions: a tiny model folder, a fake finished run, and an *oracle* generator that stands in
for ``ttft.predict.generate`` so the real prediction pipeline (views, parsing, inverse mapping, voting, metrics,
output files) runs on answers we control.

The oracle reads each prompt back into text, finds the test input (in the view's frame) and answers with the
view's truth, or with what ``policy(task_id, view)`` says: ``"right"``, ``"wrong"`` (one cell changed),
``"shape"`` (a row dropped), ``"garbage"`` (unparseable text).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ttft.core.augment import apply_task
from ttft.core.gridtext import grid_to_text
from ttft.engine.generate import Generated
from ttft.engine.predict_config import PredictConfig
from ttft.engine.views import fallback_plan, view_plan, view_specs, view_task
from ttft.runs.rundir import write_json_atomic

TASKS = ("00576224", "0c786b71", "0692e18c")  # arc-agi-1/evaluation, small grids


def tiny_model_dir(path: Path) -> str:
    import torch
    from transformers import LlamaForCausalLM

    from ttft.core.tokenizer import build_embedded_tokenizer
    from ttft.engine.models import tiny_model_config

    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_model_config()).save_pretrained(path)
    build_embedded_tokenizer().save_pretrained(path)
    return str(path)


def fake_run(path: Path, model_dir: str, tasks=TASKS, steps: int = 12) -> Path:
    """A finished full-fine-tune run folder: config.json, status, result, metrics.jsonl and model/ (the tiny
    model)."""
    from ttft.engine.models import ModelConfig
    from ttft.engine.train_config import TrainConfig

    path.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(
        mode="ttft",
        dataset="arc-agi-1/evaluation",
        tasks=tuple(tasks),
        steps=steps,
        model=ModelConfig(base_model=model_dir, full_finetune=True),
    )
    write_json_atomic(path / "config.json", cfg.to_json())
    with open(path / "metrics.jsonl", "w") as f:
        for s in range(1, steps + 1):
            f.write(json.dumps({"step": s, "loss": 2.0 / s + 0.1, "lr": 1e-4}) + "\n")
        f.write(json.dumps({"step": steps, "eval_loss": 0.35, "final": True}) + "\n")
    write_json_atomic(
        path / "status.json",
        {"status": "finished", "step": steps, "max_steps": steps, "started": 1000.0, "ended": 1042.0},
    )
    write_json_atomic(
        path / "result.json",
        {"run_dir": str(path), "status": "finished", "steps": steps, "val_loss": 0.35, "wall_seconds": 42.0},
    )
    shutil.copytree(model_dir, path / "model", dirs_exist_ok=True)
    return path


def answers_for(ds, cfg: PredictConfig, tasks=TASKS) -> dict[str, tuple[str, int, np.ndarray]]:
    """prompt tail (``<input>\\n`` + test input text + ``<output>\\n``) -> (task, view, view-frame truth)."""
    out = {}
    for tid in tasks:
        task = ds[tid]
        for k, spec in enumerate(view_specs(task, cfg)):
            vt = apply_task(task, spec)
            for p in vt.test:
                out["<input>\n" + grid_to_text(p.input) + "<output>\n"] = (tid, k, p.output)
        plan = view_plan(task, cfg)
        views = list(enumerate(plan)) + list(enumerate(fallback_plan(task, cfg), len(plan)))  # and MARC's fallback
        for k, view in views:  # views of other plans (--views-from marc's transforms)
            for p in view_task(task, view).test:
                out.setdefault("<input>\n" + grid_to_text(p.input) + "<output>\n", (tid, k, p.output))
    return out


def oracle(answers: dict, policy: Callable[[str, int], str]):
    """A drop-in for ``ttft.predict.generate``."""

    def generate(pred, prompts, max_new, *args, **kwargs):
        res = []
        for p in prompts:
            text = pred.tokenizer.decode([int(i) for i in p], skip_special_tokens=False)
            tail = text[text.rindex("<input>") :]
            tid, view, truth = answers[tail]
            what = policy(tid, view)
            g = truth.copy()
            if what == "wrong":
                g[0, 0] = (g[0, 0] + 1) % 10
            elif what == "shape" and g.shape[0] > 1:
                g = g[:-1]
            body = "?? not a grid\n" if what == "garbage" else grid_to_text(g)
            toks = [int(t) for t in pred.tokenizer(body + "</s>", add_special_tokens=False)["input_ids"]]
            res.append(Generated(toks, [-0.05 * (view + 1)] * len(toks), body + "</s>"))
        return res

    return generate


def default_policy(tid: str, view: int) -> str:
    """Task 1 right in every view; task 2 right in views 0 and 1 (the wrong views disagree with each other, so the
    right grid wins the vote); task 3 never right (a row missing, or unparseable text)."""
    if tid == TASKS[0]:
        return "right"
    if tid == TASKS[1]:
        return "right" if view in (0, 1) else "wrong"
    return "shape" if view % 2 else "garbage"


def make_prediction(
    monkeypatch,
    out: Path,
    *,
    run: str | None = None,
    base_model: str | None = None,
    views: int = 4,
    policy=default_policy,
    tasks=TASKS,
    **opts,
):
    """Run the real ``run_prediction`` with the oracle in place of generation (``opts``: more PredictConfig
    options); returns its PredictResult."""
    from ttft.core.data import load_dataset
    from ttft.engine import predict

    cfg = PredictConfig(
        run=run,
        base_model=base_model,
        dataset="arc-agi-1/evaluation",
        tasks=tuple(tasks),
        views=views,
        out=str(out),
        device="cpu",
        **{"val_loss": True, **opts},
    )
    ds = load_dataset("arc-agi-1/evaluation")
    monkeypatch.setattr(predict, "generate", oracle(answers_for(ds, cfg, tasks), policy))
    return predict.run_prediction(cfg)
