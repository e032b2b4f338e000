"""The registry of runs and jobs: job folders read into `Job`s with derived statuses, queue positions and progress."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ttft.core.names import name_problem
from ttft.options import ConfigError, Options, option
from ttft.runs.integrity import (
    JOB_FIELDS,
    OTHER_FILES,
    STATUS_FIELDS,
    TEXT_FILES,
    file_problem,
    read_checked,
    text_problem,
)
from ttft.runs.metrics import Metrics, Progress, _last
from ttft.runs.process import process_alive, reap_children
from ttft.runs.rundir import (
    ACTIVE,
    DISK_FULL_BYTES,
    JOB_FILE,
    TERMINAL,
    RunDir,
    disk_free,
    is_ttft_run,
    read_json,
    runs_root,
)

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

    runs_dir: str | None = option(
        None, "the runs folder (default: $TTFT_RUNS_DIR or ./runs); the queue is per runs folder", flag="--runs-dir"
    )
    cpu_slots: int = option(
        1, "how many CPU jobs may run at once; more wait as 'queued' ($TTFT_CPU_SLOTS)", lo=1, hi=1024
    )
    gpu_slots: int = option(
        1, "how many GPU jobs may run at once (1: one GPU job at a time; $TTFT_GPU_SLOTS)", lo=1, hi=1024
    )
    stop_timeout_s: float = option(
        30.0,
        "seconds between SIGTERM (checkpoint and stop) and SIGKILL ($TTFT_STOP_TIMEOUT)",
        lo=0.0,
        lo_open=True,
        hi=86400.0,
        flag="--stop-timeout",
    )
    poll_s: float = option(
        0.25, "how often a queued job checks for its turn (seconds)", lo=0.0, lo_open=True, hi=60.0, flag=False
    )

    ENV: ClassVar[dict[str, str]] = {
        "runs_dir": "TTFT_RUNS_DIR",
        "cpu_slots": "TTFT_CPU_SLOTS",
        "gpu_slots": "TTFT_GPU_SLOTS",
        "stop_timeout_s": "TTFT_STOP_TIMEOUT",
    }

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
    problem: str = ""  # what is damaged in the run's files ('' when nothing); the note of a ``corrupt`` run

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
        return _count(self.raw.get("step")) or _count(self.linked_raw.get("step")) or 0

    @property
    def max_steps(self) -> int | None:
        return _count(self.raw.get("max_steps")) or _count(self.linked_raw.get("max_steps")) or None

    @property
    def pid(self) -> int | None:
        v = self.raw.get("pid")
        return v if type(v) is int else None

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
        c = self.meta.get("config")
        return c if isinstance(c, dict) else {}

    def command(self) -> str:
        argv = self.meta.get("argv")
        return shlex.join(["python", "-m", self.meta.get("module") or "ttft", *argv]) if argv else ""

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "path": str(self.path),
            "status": self.status,
            "raw_status": self.raw.get("status"),
            "kind": self.kind,
            "position": self.position,
            "step": self.step,
            "max_steps": self.max_steps,
            "pid": self.pid,
            "created": self.created,
            "note": self.note,
            "error": self.raw.get("error"),
            "command": self.command(),
            "problem": self.problem,
        }


def _count(v: Any) -> int | None:
    """A step count from a status field (None when it is not a finite non-negative number)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return None
    return int(v)


def _exists(p: Path) -> bool:
    try:
        return p.exists() or p.is_symlink()
    except OSError:
        return False


def _is_run_dir(p: Path) -> bool:
    try:
        return (
            p.is_dir()
            and not p.name.startswith(".")
            and any(os.path.lexists(os.path.join(p, f)) for f in ("status.json", "config.json", JOB_FILE))
        )
    except OSError:
        return False


def _dangling(p: Path) -> bool:
    """A symbolic link whose target is gone (a run outside the runs folder, linked into it, then deleted)."""
    return os.path.islink(p) and not os.path.exists(p) and not Path(p).name.startswith(".")


def job_dirs(root: Path | str) -> list[Path]:
    """The run folders of a runs folder: ``<root>/*`` and the experiments in ``<root>/experiments/*`` (a link into
    the runs folder whose target is gone too: it is listed as ``corrupt``, so it can be deleted)."""
    root = Path(root)
    out: list[Path] = []
    for base in (root, root / EXPERIMENTS_DIR):
        try:
            entries = list(os.scandir(base))
        except OSError:
            continue
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                is_dir = e.is_dir()
            except OSError:
                is_dir = False
            if is_dir and any(
                os.path.lexists(os.path.join(e.path, f)) for f in ("status.json", "config.json", JOB_FILE)
            ):
                out.append(base / e.name)
            elif not is_dir and e.is_symlink() and not os.path.exists(e.path):
                out.append(base / e.name)
    return out


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a.absolute() == b.absolute()


def _unique(paths: list[Path]) -> list[Path]:
    """Paths with the folders reached twice (a run and a link to it) kept once (the first one)."""
    seen: set[str] = set()
    parents: dict[str, str] = {}
    out = []
    for p in paths:
        sp = os.fspath(p)
        if os.path.islink(sp):
            key = os.path.realpath(sp)
        else:  # only the parent needs resolving (once per folder)
            head, tail = os.path.split(os.path.abspath(sp))
            if head not in parents:
                parents[head] = os.path.realpath(head)
            key = os.path.join(parents[head], tail)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def queue_root(path: Path, meta: dict) -> Path:
    """The runs folder whose queue and slots a job uses (recorded at launch; else the folder it is in)."""
    return Path(meta["root"]) if meta.get("root") else Path(path).parent


def _link(path: Path, raw: dict, meta: dict) -> Path | None:
    v = raw.get("run_dir") or meta.get("run_dir")
    if not v or not isinstance(v, str):
        return None
    p = Path(v)
    return None if p.absolute() == Path(path).absolute() else p


def derive_status(raw: dict, meta: dict, now: float | None = None) -> tuple[str, str]:
    """(status, note) of a run from its status.json and job.json: the stored status unless its process is gone."""
    now = time.time() if now is None else now
    s = raw.get("status")
    if not s:
        if meta and now - float(meta.get("queued_at") or meta.get("created") or 0) < _START_GRACE_S:
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
        return "lost", (
            f"process {raw.get('pid')} ended without a final status{how}: killed, out of memory, or "
            "the machine restarted"
        )
    return "lost", f"unknown status {s!r}"


def read_job(path: Path | str) -> Job:
    """One run folder as a Job. Never raises: a status.json or job.json that cannot be read (binary, not JSON, a
    JSON list, a folder, a field of the wrong type...) makes the run ``corrupt`` with the reason in its note; a
    damaged config, manifest, result, metrics or log file does too once the run is not active (while it is, the
    reason is in the note)."""
    path = Path(path)
    if _dangling(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        gone = f"a link to {target}, which is gone"
        return Job(path=path, status="corrupt", note=gone, problem=gone)
    raw, why_status = read_checked(path / "status.json", STATUS_FIELDS)
    meta, why_meta = read_checked(path / JOB_FILE, JOB_FIELDS)
    if why := (why_status or why_meta):
        return Job(path=path, status="corrupt", raw={}, meta=meta, note=why, problem=why)
    status, note = derive_status(raw, meta)
    if status == "lost" and (free := disk_free(path)) is not None and free < DISK_FULL_BYTES:
        note = (
            f"{note}; the disk holding it is full ({free // 1024} KB free): it probably failed writing and could "
            "not record why (see log.txt, stderr.txt)"
        )
    link = _link(path, raw, meta)
    linked, why_linked = read_checked(link / "status.json", STATUS_FIELDS) if link else ({}, None)
    sp = os.fspath(path)
    other = (
        next((w for f in OTHER_FILES if (w := file_problem(os.path.join(sp, f)))), None)
        or next((w for f in TEXT_FILES if (w := text_problem(os.path.join(sp, f)))), None)
        or (f"the linked run {link}: {why_linked}" if why_linked else None)
    )
    if other and status not in ACTIVE:
        return Job(path=path, status="corrupt", raw=raw, meta=meta, note=other, linked_raw=linked, problem=other)
    if other:
        note = f"{note}; {other}" if note else other
    return Job(path=path, status=status, raw=raw, meta=meta, note=note, linked_raw=linked, problem=other or "")


def list_jobs(root: Path | str | None = None) -> list[Job]:
    """Every run in the runs folder and its experiments folder, newest first, with derived statuses and queue
    positions. A run linked to the job that runs it (``job`` in its status: an experiment launched with ``jobs
    launch``) is listed once, as that job. A run whose files are damaged is listed as ``corrupt`` (never raises)."""
    reap_children()
    root = Path(root) if root else runs_root()
    jobs = [read_job(p) for p in _unique(job_dirs(root))]
    listed = {j.path.absolute() for j in jobs}
    jobs = [
        j
        for j in jobs
        if not (
            j.raw.get("job")
            and Path(j.raw["job"]).absolute() in listed
            and Path(j.raw["job"]).absolute() != j.path.absolute()
        )
    ]
    assign_positions(jobs)
    return sorted(jobs, key=lambda j: (j.created, j.id), reverse=True)


def assign_positions(jobs: list[Job]) -> None:
    for kind in KINDS:
        queued = sorted(
            (j for j in jobs if j.status == "queued" and j.meta.get("kind") == kind), key=lambda j: (j.queued_at, j.id)
        )
        for i, j in enumerate(queued, 1):
            j.position = i


def _inside(p: Path, root: Path) -> bool:
    try:
        return p.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def resolve(run: str | os.PathLike | Job, root: Path | str | None = None) -> Path:
    """A run's folder from its id (a folder name in the runs folder or its experiments folder) or a path. Only a
    folder ttft wrote a run into (``status.json`` or ``job.json``, :func:`ttft.runs.rundir.is_ttft_run`) is
    returned; an id is a plain name (no ``.``, ``..`` or separator), so it never leaves the runs folder; a path
    outside the runs folder is taken only as given, and only when it is a ttft run. JobError says why not."""
    if isinstance(run, Job):
        return run.path
    root = Path(root) if root else runs_root()
    text = str(run)
    hint = "give a run id from `python -m ttft jobs list` or the path of a run folder"
    if not text.strip():
        raise JobError(f"no run given ({hint})")
    is_path = isinstance(run, Path) or "/" in text or os.sep in text or text.startswith("~")
    if not is_path:
        if why := name_problem(text, "run id"):
            raise JobError(f"{why} ({hint})")
        cands = [root / text, root / EXPERIMENTS_DIR / text]
    else:
        p = Path(text).expanduser()
        inner = [] if p.is_absolute() else [c for c in (root / p, root / EXPERIMENTS_DIR / p) if _inside(c, root)]
        cands = [*inner, p]
    for cand in cands:
        if is_ttft_run(cand) or (_dangling(cand) and _inside(cand.parent, root)):
            cand = cand.absolute()
            if _contains(cand, root):
                raise JobError(f"{text} is the runs folder {root} (or holds it), not a run")
            return cand
    found = next((c for c in cands if _exists(c)), None)
    if found is not None:
        raise JobError(
            f"no run {text!r} in {root}: {found} is not a ttft run (it has no status.json or job.json; "
            "ttft did not write it)"
        )
    raise JobError(f"no run {text!r} in {root} ({hint})")


def _contains(p: Path, root: Path) -> bool:
    """Whether ``p`` is ``root`` or a folder above it."""
    try:
        return root.resolve().is_relative_to(p.resolve())
    except OSError:
        return False


def get_job(run: str | os.PathLike | Job, root: Path | str | None = None) -> Job:
    reap_children()
    path = resolve(run, root)
    job = read_job(path)
    if job.status == "queued":
        siblings = [read_job(p) for p in _unique([path, *job_dirs(queue_root(path, job.meta))])]
        assign_positions(siblings)
        job.position = next((j.position for j in siblings if _same(j.path, path)), None)
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
    return Progress(
        step=step,
        max_steps=max_steps,
        fraction=fraction,
        eta_s=eta,
        tokens_per_second=float(tps.mean()) if tps.size else None,
        loss=_last(loss),
        eval_loss=_last(m.col("eval_loss")),
        lr=_last(m.col("lr")),
        elapsed_s=elapsed,
    )
