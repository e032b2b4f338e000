"""The registry of prediction folders: find them under the runs folder (and the prediction jobs that have not written
theirs yet), read them, and what they have done so far."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttft.core import metrics as M
from ttft.runs.integrity import read_json_checked
from ttft.runs.process import process_alive
from ttft.runs.rundir import ACTIVE, JOB_FILE, read_json, read_jsonl, runs_root

#: where prediction folders are looked for, relative to the runs folder
FIND_PATTERNS = (
    "*/predictions/*",
    "*/predictions",
    "experiments/*/rows/*/predictions",
    "experiments/*/rows/*/predictions/*",
)


@dataclass
class Progress:
    """How far a prediction is: tasks and views done of all, seconds since it started, and an estimate of the
    seconds left (from the views done so far; None until some are)."""

    done: int
    total: int | None
    views_done: int | None
    views_total: int | None
    elapsed_s: float | None
    eta_s: float | None

    @property
    def fraction(self) -> float:
        if self.views_total and self.views_done is not None:
            return min(1.0, self.views_done / self.views_total)
        return min(1.0, self.done / self.total) if self.total else 0.0


@dataclass
class PredictionRef:
    """A prediction folder as the app sees it: its run (the folder holding ``predictions/``, relative to the runs
    folder) and name, its config and status (``lost`` when a running prediction's process is gone).

    ``job`` is the job folder of a prediction launched as a background job; a *pending* prediction (``pending``)
    is a job whose folder is not written yet (queued, starting, or failed before it wrote anything): its config is
    the one it was launched with and its status the job's.

    A folder whose config.json or status.json cannot be read (not JSON, not an object, unreadable...) is listed all
    the same, as ``corrupt`` with the reason in ``problem`` (its config and status then read as {})."""

    path: Path
    run_key: str
    name: str
    config: dict
    status: dict
    job: Path | None = None
    pending: bool = False
    problem: str = ""

    @property
    def label(self) -> str:
        return f"{self.run_key} · {self.name}"

    @property
    def state(self) -> str:
        if self.problem:
            return "corrupt"
        s = self.status.get("status", "unknown")
        if not isinstance(s, str):
            return "unknown"
        if s in ("running", "stopping") and not process_alive(self.status.get("pid"), self.status.get("pid_start")):
            if self.pending and process_alive(self.status.get("supervisor_pid"), self.status.get("supervisor_start")):
                return s  # the supervisor records how it ended
            return "lost"
        return s

    @property
    def live(self) -> bool:
        """Whether it may still change: queued, running or stopping."""
        return self.state in ACTIVE

    @property
    def error(self) -> str:
        return str(self.status.get("error") or "")

    @property
    def stop_target(self) -> Path:
        """The folder to stop (``ttft.runs.jobs.stop``): the job's when it has one (its supervisor records the
        end), else the prediction folder itself (a prediction started by command line)."""
        return self.job or self.path

    @property
    def source(self) -> dict:
        """The config's ``source`` (what was predicted with: kind, run, model), {} when it is missing or not an
        object."""
        src = self.config.get("source")
        return src if isinstance(src, dict) else {}

    @property
    def source_run(self) -> Path | None:
        r = self.source.get("run") or self.config.get("run")
        return Path(r) if isinstance(r, str) and r else None

    @property
    def mtime(self) -> float:
        try:
            return (self.path / "config.json").stat().st_mtime
        except OSError:
            v = self.status.get("queued_at") or self.status.get("started") or 0.0
            return float(v) if isinstance(v, (int, float)) else 0.0

    def metrics(self) -> dict:
        return read_json(self.path / "metrics.json", {}) or {}

    def summary(self) -> dict:
        """metrics.json's summary, or (while running, or when it never wrote one) the mean over the tasks done; the
        tasks.jsonl lines left out (no ``task`` or no ``metrics``) are counted in ``skipped_lines``."""
        m = self.metrics().get("summary")
        if isinstance(m, dict) and m:
            return m
        rows, skipped = self.task_lines()
        out = M.summarize({r["task"]: r["metrics"] for r in rows})
        if skipped:
            out["skipped_lines"] = skipped
        return out

    def task_lines(self) -> tuple[list[dict], int]:
        """(the task lines of tasks.jsonl, how many lines were left out): a line is a task when it has a ``task``
        id and a ``metrics`` object (a damaged or foreign line is skipped, never an error downstream)."""
        good, lines = [], 0
        try:
            with open(self.path / "tasks.jsonl", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.endswith("\n"):
                        break  # a line being written
                    if not line.strip():
                        continue
                    lines += 1
                    try:
                        r = json.loads(line)
                    except (ValueError, RecursionError):
                        continue
                    if (
                        isinstance(r, dict)
                        and isinstance(r.get("task"), str)
                        and r["task"]
                        and isinstance(r.get("metrics"), dict)
                    ):
                        good.append(r)
        except OSError:
            pass
        return good, lines - len(good)

    def tasks(self) -> list[dict]:
        return self.task_lines()[0]

    def views(self) -> list[dict]:
        return read_jsonl(self.path / "predictions.jsonl")

    def progress(self, n_done: int | None = None, now: float | None = None) -> Progress:
        """Tasks and views done (status.json's counts; ``n_done``: the tasks counted in tasks.jsonl, which can be
        ahead of the status), time since the start and an estimate of the time left."""
        st = self.status
        now = time.time() if now is None else now
        total = st.get("total")
        if total is None and self.config.get("tasks"):
            total = len(self.config["tasks"])
        done = max(int(st.get("done") or 0), n_done or 0)
        vd, vt = st.get("views_done"), st.get("views_total")
        started = st.get("started")
        end = st.get("ended") if not self.live else now
        elapsed = float(end) - float(started) if isinstance(started, (int, float)) and end else None
        eta = None
        if self.live and elapsed and vd and vt and vd < vt:
            eta = elapsed * (vt - vd) / vd
        return Progress(done, total, vd, vt, elapsed, eta)


def submission(task_ids: Sequence[str], results: Mapping[str, Mapping[str, Any]], n_tests: Mapping[str, int]) -> dict:
    """Kaggle's submission: ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, one dict per test input,
    every task present; a missing attempt is ``[[0]]``."""
    sub = {}
    for tid in task_ids:
        tests = {t["test_index"]: t for t in results.get(tid, {}).get("tests", [])}
        rows = []
        for i in range(n_tests[tid]):
            att = tests.get(i, {}).get("attempts") or [None, None]
            rows.append(
                {
                    "attempt_1": att[0] if att[0] is not None else [[0]],
                    "attempt_2": att[1] if len(att) > 1 and att[1] is not None else [[0]],
                }
            )
        sub[tid] = rows
    return sub


def partial_submission(ref: PredictionRef, n_tests: Mapping[str, int] | None = None) -> dict:
    """The submission of the tasks done so far (a prediction still running, or one that ended without writing
    submission.json): every selected task whose number of test inputs is known (``n_tests``; else only the tasks
    done), ``[[0]]`` for the attempts not made."""
    done = {r["task"]: r for r in ref.tasks()}
    counts = {tid: len(r.get("tests", [])) for tid, r in done.items()}
    ids = list(done)
    if n_tests is not None:
        ids = [t for t in ref.config.get("tasks", []) if t in n_tests or t in counts] or ids
        counts = {**dict(n_tests), **counts}
    return submission(ids, done, counts)


def run_key_of(path: Path, root: Path | None = None) -> str:
    """The run key of a prediction folder: the folder holding its ``predictions/`` (or its parent), relative to the
    runs folder (its absolute path outside it)."""
    root = Path(root) if root is not None else runs_root()
    group = path.parent.parent if path.parent.name == "predictions" else path.parent
    try:
        return group.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(group)


def is_prediction_dir(p: Path) -> bool:
    cfg = read_json(p / "config.json")
    return isinstance(cfg, dict) and cfg.get("kind") == "predict"


def _damaged_prediction_dir(p: Path) -> bool:
    """A folder where predictions are kept whose config.json is there but cannot be read as an object: listed as a
    ``corrupt`` prediction (never hidden, never an error)."""
    return os.path.lexists(p / "config.json") and read_json_checked(p / "config.json")[1] is not None


def read_prediction(path: Path | str, root: Path | None = None) -> PredictionRef:
    """A prediction folder, with its run key relative to ``root`` (default: the runs folder). Never raises: a
    config.json or status.json that cannot be read makes it ``corrupt`` with the reason."""
    path = Path(path)
    root = Path(root) if root is not None else runs_root()
    config, why_config = read_json_checked(path / "config.json")
    status, why_status = read_json_checked(path / "status.json")
    problem = why_config or why_status or ""
    status = status or {}
    job = Path(status["job"]) if isinstance(status.get("job"), str) and status["job"] else None
    return PredictionRef(path, run_key_of(path, root), path.name, config or {}, status, job, problem=problem)


def _argv_value(argv: Sequence[str], flag: str) -> str | None:
    argv = list(argv)
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return str(argv[i + 1])
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def prediction_jobs(root: Path | str | None = None) -> list[PredictionRef]:
    """The prediction jobs (``predict`` commands queued with ``ttft.runs.jobs``) whose folder is not written yet:
    queued, starting, or failed or stopped before writing it. Status derived by the job registry (queue position,
    ``lost``), ``error`` as the job recorded it (the end of its stderr for a command that exited 2)."""
    from ttft.runs.registry import derive_status, job_dirs

    root = Path(root) if root is not None else runs_root()
    out: list[PredictionRef] = []
    for d in job_dirs(root):
        meta = read_json(d / JOB_FILE, {}) or {}
        argv = meta.get("argv") or []
        if argv[:1] != ["predict"] or meta.get("stage"):
            continue
        target = _argv_value(argv, "--out")
        if not target:
            continue
        path = Path(target)
        if is_prediction_dir(path):
            continue
        raw = read_json(d / "status.json", {}) or {}
        status, note = derive_status(raw, meta)
        st = {
            **raw,
            "status": status,
            "note": note or raw.get("note") or "",
            "queued_at": raw.get("queued_at") or meta.get("queued_at") or meta.get("created"),
        }
        cfg = {"kind": "predict", **(meta.get("config") or {})}
        out.append(PredictionRef(path, run_key_of(path, root), path.name, cfg, st, d, pending=True))
    return out


def find_predictions(root: Path | str | None = None, jobs: bool = False) -> list[PredictionRef]:
    """Every prediction folder under the runs folder (:data:`FIND_PATTERNS`), newest first; with ``jobs``, also
    the prediction jobs that have not written their folder yet (:func:`prediction_jobs`)."""
    root = Path(root) if root is not None else runs_root()
    if not root.is_dir():
        return []
    seen: dict[Path, PredictionRef] = {}
    for pat in FIND_PATTERNS:
        for p in root.glob(pat):
            if p.is_dir() and p not in seen and (is_prediction_dir(p) or _damaged_prediction_dir(p)):
                seen[p] = read_prediction(p, root)
    if jobs:
        for ref in prediction_jobs(root):
            seen.setdefault(ref.path, ref)
    return sorted(seen.values(), key=lambda r: (r.mtime, r.label), reverse=True)
