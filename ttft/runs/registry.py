"""The registry of runs and jobs: job folders read into `Job`s with derived statuses, queue positions and progress."""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ttft.options import ConfigError, Options, option
from ttft.runs.metrics import Metrics, Progress, _last
from ttft.runs.process import process_alive, reap_children
from ttft.runs.rundir import ACTIVE, JOB_FILE, TERMINAL, RunDir, read_json, runs_root

#: the slot kinds: cpu and gpu jobs compute; an experiment (an orchestrator of cpu/gpu stage jobs) takes the
#: ``experiment`` slot, which no stage uses (so an experiment waiting for its stages never holds a slot they need)
ORCHESTRATOR = "experiment"
KINDS = ("cpu", "gpu", ORCHESTRATOR)

#: experiments' folders (``python -m ttft experiment …``), relative to the runs folder; listed as jobs too
EXPERIMENTS_DIR = "experiments"


#: a queued run whose supervisor pid is not recorded yet (the launcher writes it right after starting it)
_START_GRACE_S = 30.0


class JobError(ConfigError):
    """A job operation that cannot be done (the message says why)."""


@dataclass
class JobConfig(Options):
    """How jobs are queued and stopped. ``from_env`` reads ``TTFT_RUNS_DIR``, ``TTFT_CPU_SLOTS``,
    ``TTFT_GPU_SLOTS`` and ``TTFT_STOP_TIMEOUT``."""

    ERROR: ClassVar[type[ConfigError]] = JobError
    TITLE: ClassVar[str] = "jobs"
    GROUP: ClassVar[str] = "Jobs"

    runs_dir: str | None = option(None, "the runs folder (default: $TTFT_RUNS_DIR or ./runs); the queue is per "
                                  "runs folder", flag="--runs-dir")
    cpu_slots: int = option(1, "how many CPU jobs may run at once; more wait as 'queued' ($TTFT_CPU_SLOTS)", lo=1,
                            hi=1024)
    gpu_slots: int = option(1, "how many GPU jobs may run at once (1: one GPU job at a time; $TTFT_GPU_SLOTS)",
                            lo=1, hi=1024)
    stop_timeout_s: float = option(30.0, "seconds between SIGTERM (checkpoint and stop) and SIGKILL "
                                   "($TTFT_STOP_TIMEOUT)", lo=0.0, lo_open=True, hi=86400.0, flag="--stop-timeout")
    poll_s: float = option(0.25, "how often a queued job checks for its turn (seconds)", lo=0.0, lo_open=True,
                           hi=60.0, flag=False)

    ENV: ClassVar[dict[str, str]] = {"runs_dir": "TTFT_RUNS_DIR", "cpu_slots": "TTFT_CPU_SLOTS",
                                     "gpu_slots": "TTFT_GPU_SLOTS", "stop_timeout_s": "TTFT_STOP_TIMEOUT"}

    @classmethod
    def from_env(cls, **overrides: Any) -> JobConfig:
        """From the environment (``ENV``), then ``overrides`` (None values ignored); validated."""
        kw: dict[str, Any] = {}
        kinds = {o.name: o.kind for o in cls.options()}
        for name, var in cls.ENV.items():
            text = os.environ.get(var)
            if not text or name == "runs_dir":
                continue
            try:
                kw[name] = int(text) if kinds[name] == "int" else float(text)
            except ValueError:
                raise JobError(f"{var}: not a number: {text!r}") from None
        kw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_json(kw)
        except ConfigError as e:
            raise JobError(str(e)) from None

    @property
    def root(self) -> Path:
        return Path(self.runs_dir).expanduser().absolute() if self.runs_dir else runs_root().absolute()

    def slots(self, kind: str) -> int:
        return self.gpu_slots if kind == "gpu" else self.cpu_slots


@dataclass
class Job:
    """One run directory as the registry sees it. ``status`` is derived (``lost`` when the process is gone)."""

    path: Path
    status: str
    raw: dict = field(default_factory=dict)  # status.json
    meta: dict = field(default_factory=dict)  # job.json ({} for a run started without the launcher)
    position: int | None = None  # 1-based queue position among queued jobs of the same kind
    note: str = ""
    linked_raw: dict = field(default_factory=dict)  # status.json of the run it writes elsewhere (run_dir)

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def run_dir(self) -> Path:
        """The folder of the run the job's process writes: the job folder itself, or the ``run_dir`` it is linked
        to (an experiment stage's train run or predictions, an experiment launched with ``jobs launch``)."""
        link = _link(self.path, self.raw, self.meta)
        return link or self.path

    @property
    def run(self) -> RunDir:
        return RunDir(self.run_dir)

    @property
    def kind(self) -> str:
        """'cpu' or 'gpu' (the slot it takes); for a run started without the launcher, from its device."""
        if self.meta.get("kind") in KINDS:
            return self.meta["kind"]
        if self.config().get("experiment"):
            return ORCHESTRATOR
        dev = str(self.run.manifest().get("device") or self.config().get("device") or "")
        return "cpu" if dev == "cpu" else ("gpu" if dev.startswith(("cuda", "mps")) else "")

    @property
    def step(self) -> int:
        return int(self.raw.get("step") or self.linked_raw.get("step") or 0)

    @property
    def max_steps(self) -> int | None:
        v = self.raw.get("max_steps") or self.linked_raw.get("max_steps")
        return int(v) if v else None

    @property
    def pid(self) -> int | None:
        return self.raw.get("pid")

    @property
    def created(self) -> float:
        for v in (self.meta.get("created"), self.raw.get("started")):
            if isinstance(v, (int, float)):
                return float(v)
        for f in (self.path / "config.json", self.path / "status.json"):
            with contextlib.suppress(OSError):
                return f.stat().st_mtime
        return 0.0

    @property
    def queued_at(self) -> float:
        v = self.raw.get("queued_at", self.meta.get("queued_at"))
        return float(v) if isinstance(v, (int, float)) else self.created

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def config(self) -> dict:
        """The run's training config: config.json, or the one it was launched with while it is queued."""
        cfg = read_json(self.path / "config.json")
        if isinstance(cfg, dict):
            return cfg
        return self.meta.get("config") or {}

    def command(self) -> str:
        argv = self.meta.get("argv")
        return shlex.join(["python", "-m", self.meta.get("module") or "ttft", *argv]) if argv else ""

    def to_json(self) -> dict:
        return {"id": self.id, "path": str(self.path), "status": self.status, "raw_status": self.raw.get("status"),
                "kind": self.kind, "position": self.position, "step": self.step, "max_steps": self.max_steps,
                "pid": self.pid, "created": self.created, "note": self.note, "error": self.raw.get("error"),
                "command": self.command()}


def _is_run_dir(p: Path) -> bool:
    return p.is_dir() and not p.name.startswith(".") and any(
        (p / f).exists() for f in ("status.json", "config.json", JOB_FILE))


def job_dirs(root: Path | str) -> list[Path]:
    """The run folders of a runs folder: ``<root>/*`` and the experiments in ``<root>/experiments/*``."""
    root = Path(root)
    out: list[Path] = []
    for base in (root, root / EXPERIMENTS_DIR):
        try:
            out += [p for p in base.iterdir() if _is_run_dir(p)]
        except (FileNotFoundError, NotADirectoryError):
            pass
    return out


def queue_root(path: Path, meta: dict) -> Path:
    """The runs folder whose queue and slots a job uses (recorded at launch; else the folder it is in)."""
    return Path(meta["root"]) if meta.get("root") else Path(path).parent


def _link(path: Path, raw: dict, meta: dict) -> Path | None:
    v = raw.get("run_dir") or meta.get("run_dir")
    if not v:
        return None
    p = Path(v)
    return None if p.absolute() == Path(path).absolute() else p


def derive_status(raw: dict, meta: dict, now: float | None = None) -> tuple[str, str]:
    """(status, note) of a run from its status.json and job.json: the stored status unless its process is gone."""
    now = time.time() if now is None else now
    s = raw.get("status")
    if not s:
        if meta and now - float(meta.get("queued_at", meta.get("created", 0))) < _START_GRACE_S:
            return "queued", ""
        return "lost", "no status was ever written (the process never started or died at once)"
    if s in TERMINAL:
        return s, str(raw.get("note") or "")
    sup_ok = process_alive(raw.get("supervisor_pid"), raw.get("supervisor_start"))
    if s == "queued":
        if sup_ok:
            return "queued", ""
        if raw.get("supervisor_pid") is None and now - float(raw.get("queued_at") or 0) < _START_GRACE_S:
            return "queued", ""
        return "lost", "its queue process is gone (killed while waiting, or the machine restarted)"
    if s in ("running", "stopping"):
        if process_alive(raw.get("pid"), raw.get("pid_start")) or sup_ok:
            return s, ""
        how = f" (killed by {raw['exit_signal']})" if raw.get("exit_signal") else ""
        return "lost", (f"process {raw.get('pid')} ended without a final status{how}: killed, out of memory, or "
                        "the machine restarted")
    return "lost", f"unknown status {s!r}"


def read_job(path: Path | str) -> Job:
    path = Path(path)
    raw = read_json(path / "status.json", {}) or {}
    meta = read_json(path / JOB_FILE, {}) or {}
    status, note = derive_status(raw, meta)
    link = _link(path, raw, meta)
    linked = (read_json(link / "status.json", {}) or {}) if link else {}
    return Job(path=path, status=status, raw=raw, meta=meta, note=note, linked_raw=linked)


def list_jobs(root: Path | str | None = None) -> list[Job]:
    """Every run in the runs folder and its experiments folder, newest first, with derived statuses and queue
    positions. A run linked to the job that runs it (``job`` in its status: an experiment launched with ``jobs
    launch``) is listed once, as that job."""
    reap_children()
    root = Path(root) if root else runs_root()
    jobs = [read_job(p) for p in job_dirs(root)]
    listed = {j.path.absolute() for j in jobs}
    jobs = [j for j in jobs if not (j.raw.get("job") and Path(j.raw["job"]).absolute() in listed
                                    and Path(j.raw["job"]).absolute() != j.path.absolute())]
    assign_positions(jobs)
    return sorted(jobs, key=lambda j: (j.created, j.id), reverse=True)


def assign_positions(jobs: list[Job]) -> None:
    for kind in KINDS:
        queued = sorted((j for j in jobs if j.status == "queued" and j.meta.get("kind") == kind),
                        key=lambda j: (j.queued_at, j.id))
        for i, j in enumerate(queued, 1):
            j.position = i


def resolve(run: str | os.PathLike | Job, root: Path | str | None = None) -> Path:
    """A run's folder from its id (in the runs folder) or a path."""
    if isinstance(run, Job):
        return run.path
    p = Path(run).expanduser()
    root = Path(root) if root else runs_root()
    for cand in ((root / p) if not p.is_absolute() else None,
                 (root / EXPERIMENTS_DIR / p) if not p.is_absolute() else None, p):
        if cand is not None and _is_run_dir(cand):
            return cand.absolute()
    raise JobError(f"no run {str(run)!r} in {root} (give a run id from `python -m ttft jobs list` or a path)")


def get_job(run: str | os.PathLike | Job, root: Path | str | None = None) -> Job:
    reap_children()
    path = resolve(run, root)
    job = read_job(path)
    if job.status == "queued":
        siblings = [read_job(p) for p in {*job_dirs(queue_root(path, job.meta)), path}]
        assign_positions(siblings)
        job.position = next((j.position for j in siblings if j.path == path), None)
    return job


def progress(job: Job, m: Metrics, now: float | None = None) -> Progress:
    """Step, fraction, ETA (from the last 20 logged steps), tokens/s, latest loss / eval loss / lr of a run."""
    now = time.time() if now is None else now
    step, max_steps = job.step, job.max_steps
    steps, times, loss = m.col("step"), m.col("time"), m.col("loss")
    train = ~np.isnan(loss)
    if train.any():
        step = max(step, int(steps[train][-1]))
    fraction = min(1.0, step / max_steps) if max_steps else 0.0
    eta = None
    if job.status in ("running", "stopping") and max_steps and train.sum() >= 2:
        s, t = steps[train][-20:], times[train][-20:]
        if s[-1] > s[0] and t[-1] > t[0]:
            per_step = (t[-1] - t[0]) / (s[-1] - s[0])
            eta = max(0.0, (max_steps - step) * per_step - max(0.0, now - t[-1]))
    tps = m.col("tokens_per_second")[train][-10:]
    tps = tps[~np.isnan(tps)]
    started = job.raw.get("started")
    end = job.raw.get("ended") if job.status not in ACTIVE else now
    elapsed = (float(end) - float(started)) if isinstance(started, (int, float)) and end else None
    return Progress(step=step, max_steps=max_steps, fraction=fraction, eta_s=eta,
                    tokens_per_second=float(tps.mean()) if tps.size else None, loss=_last(loss),
                    eval_loss=_last(m.col("eval_loss")), lr=_last(m.col("lr")), elapsed_s=elapsed)
