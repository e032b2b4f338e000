"""What a prediction predicts with: a run's adapters or full model, or a bare base model, and its tasks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ttft.core.encoding import EncodingConfig
from ttft.engine.predict_config import PredictConfig, PredictError
from ttft.runs.rundir import RunDir


@dataclass
class Source:
    """What to load: a base model (ModelConfig), optionally one adapter or per-task adapters, or a full fine-tune's
    model folder; the encoding; the run's dataset and tasks."""

    kind: str  # "base", "adapter", "per-task", "full"
    model: Any  # ModelConfig of the base (for "full": base_model is the run's model/ folder)
    encoding: EncodingConfig
    adapter: str | None = None
    adapters: dict[str, str] = field(default_factory=dict)
    run: str | None = None
    dataset: str | None = None
    tasks: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "base":
            return f"base model {self.model.base_model}"
        what = {
            "adapter": "adapter/",
            "per-task": f"{len(self.adapters)} per-task adapters",
            "full": "full fine-tune model/",
        }[self.kind]
        return f"run {self.run} ({what})"

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "model": self.model.to_json(),
            "encoding": self.encoding.to_json(),
            "adapter": self.adapter,
            "n_adapters": len(self.adapters),
            "run": self.run,
            "dataset": self.dataset,
        }


def resolve_source(cfg: PredictConfig) -> Source:
    """The model to predict with, from ``cfg.run`` or ``cfg.base_model``. Raises PredictError naming what is wrong
    (missing run, run without an adapter or model, missing model folder)."""
    from ttft.engine.models import ModelConfig, ModelError

    if cfg.base_model:
        mc = ModelConfig(base_model=cfg.base_model)
        try:
            mc.validate()
        except ModelError as e:
            raise PredictError(f"base model: {e}") from None
        enc = cfg.bare_encoding()
        return Source("base", mc, enc)
    run = RunDir(Path(cfg.run).expanduser())
    if not run.path.is_dir():
        raise PredictError(f"run {cfg.run}: no such folder")
    rc = run.config()
    if not rc:
        raise PredictError(f"run {cfg.run}: no config.json (not a run directory)")
    try:
        mc = ModelConfig.from_json({**rc.get("model", {}), "adapter": None})
        enc = EncodingConfig.from_json(rc.get("encoding") or {"max_seq_len": 2048})
    except (ValueError, TypeError) as e:
        raise PredictError(f"run {cfg.run}: its config.json cannot be read ({e})") from None
    if cfg.format and cfg.format != enc.format:
        raise PredictError(f"format: the run was trained with format {enc.format!r}, got {cfg.format!r}")
    if cfg.prompt and cfg.prompt != enc.prompt:
        raise PredictError(f"prompt: the run was trained with prompt {enc.prompt!r}, got {cfg.prompt!r}")
    common = dict(encoding=enc, run=str(run.path), dataset=rc.get("dataset"), tasks=tuple(rc.get("tasks") or ()))
    status = run.status().get("status", "unknown")
    model_dir = run.path / "model"
    if (model_dir / "config.json").exists():
        return Source("full", replace(mc, base_model=str(model_dir), full_finetune=False, init="pretrained"), **common)
    if (run.adapter_dir / "adapter_config.json").exists():
        return Source("adapter", mc, adapter=str(run.adapter_dir), **common)
    adapters = {}
    if run.adapters_dir.is_dir():
        adapters = {p.name: str(p) for p in sorted(run.adapters_dir.iterdir()) if (p / "adapter_config.json").exists()}
    if adapters:
        return Source("per-task", mc, adapters=adapters, **common)
    raise PredictError(
        f"run {cfg.run} has no adapter/, adapters/<task>/ or model/ (status {status}: "
        f"{'still running' if status == 'running' else 'not finished'}?)"
    )


def select(cfg: PredictConfig, source: Source):
    """(dataset spec, dataset, selected tasks): ``cfg``'s dataset and tasks, else the run's
    (:func:`ttft.core.selection.select_tasks`; its errors as PredictError)."""
    from ttft.core.selection import select_tasks
    from ttft.options import ConfigError

    spec = cfg.dataset or source.dataset
    if not spec:
        raise PredictError("dataset: the run names no dataset; pass --dataset")
    ids = list(cfg.tasks) or (list(source.tasks) if source.tasks and spec == source.dataset else [])
    try:
        ds, tasks = select_tasks(spec, ids, cfg.max_task_tokens)
    except PredictError:
        raise
    except ConfigError as e:
        raise PredictError(str(e)) from None
    return spec, ds, tasks
