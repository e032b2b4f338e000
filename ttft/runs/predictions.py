"""The registry of prediction folders: find them under the runs folder and read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ttft.core import metrics as M
from ttft.runs.process import process_alive
from ttft.runs.rundir import read_json, runs_root

#: where prediction folders are looked for, relative to the runs folder
FIND_PATTERNS = ("*/predictions/*", "*/predictions", "experiments/*/rows/*/predictions",
                 "experiments/*/rows/*/predictions/*")


@dataclass
class PredictionRef:
    """A prediction folder as the app sees it: its run (the folder holding ``predictions/``, relative to the runs
    folder) and name, its config and status (``lost`` when a running prediction's process is gone)."""

    path: Path
    run_key: str
    name: str
    config: dict
    status: dict

    @property
    def label(self) -> str:
        return f"{self.run_key} · {self.name}"

    @property
    def state(self) -> str:
        s = self.status.get("status", "unknown")
        if s in ("running", "stopping") and not process_alive(self.status.get("pid"), self.status.get("pid_start")):
            return "lost"
        return s

    @property
    def source_run(self) -> Path | None:
        r = (self.config.get("source") or {}).get("run") or self.config.get("run")
        return Path(r) if r else None

    @property
    def mtime(self) -> float:
        try:
            return (self.path / "config.json").stat().st_mtime
        except OSError:
            return 0.0

    def metrics(self) -> dict:
        return read_json(self.path / "metrics.json", {}) or {}

    def summary(self) -> dict:
        """metrics.json's summary, or (while running) the mean over the tasks done so far."""
        m = self.metrics().get("summary")
        if m:
            return m
        return M.summarize({r["task"]: r["metrics"] for r in self.tasks()})

    def tasks(self) -> list[dict]:
        from ttft.runs.rundir import read_jsonl

        return read_jsonl(self.path / "tasks.jsonl")

    def views(self) -> list[dict]:
        from ttft.runs.rundir import read_jsonl

        return read_jsonl(self.path / "predictions.jsonl")


def is_prediction_dir(p: Path) -> bool:
    cfg = read_json(p / "config.json")
    return isinstance(cfg, dict) and cfg.get("kind") == "predict"


def read_prediction(path: Path | str, root: Path | None = None) -> PredictionRef:
    """A prediction folder, with its run key relative to ``root`` (default: the runs folder)."""
    path = Path(path)
    root = Path(root) if root is not None else runs_root()
    group = path.parent.parent if path.parent.name == "predictions" else path.parent
    try:
        key = group.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        key = str(group)
    return PredictionRef(path, key, path.name, read_json(path / "config.json", {}) or {},
                         read_json(path / "status.json", {}) or {})


def find_predictions(root: Path | str | None = None) -> list[PredictionRef]:
    """Every prediction folder under the runs folder (:data:`FIND_PATTERNS`), newest first."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    seen: dict[Path, PredictionRef] = {}
    for pat in FIND_PATTERNS:
        for p in root.glob(pat):
            if p.is_dir() and p not in seen and is_prediction_dir(p):
                seen[p] = read_prediction(p, root)
    return sorted(seen.values(), key=lambda r: (r.mtime, r.label), reverse=True)
