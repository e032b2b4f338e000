"""Background jobs: launch ``python -m ttft …`` in its own process session, queue it, watch, stop, resume, delete.

There is no daemon. The run directory is the contract (see docs/jobs.md):

* ``launch`` writes ``<run>/job.json`` (the command, cpu/gpu kind, slot count) and ``status.json`` (``queued``), then
  starts a detached supervisor, ``python -m ttft jobs wait-and-run <run>`` (``start_new_session=True``), which
  waits for its turn (queue order = ``queued_at``, then the run id) and for a free device slot (an ``fcntl.flock``
  on ``<runs>/.locks/<kind>-<i>.lock``; the kernel releases it when the holder dies, so a stale lock never blocks),
  then runs the command as its child with stdout/stderr appended to ``stdout.txt`` / ``stderr.txt`` and the lock fd
  inherited (the slot is busy while the job's process lives). When the child ends without a final status the
  supervisor records one: ``finished`` (exit 0), ``failed`` (exit > 0, with the stderr tail) or, killed by a
  signal, the exit signal (the registry then shows ``lost``).
* The registry (:func:`list_jobs`) is derived from the run directories on every call, so a new app process finds
  running jobs, and a run started with plain ``python -m ttft train`` into the same folder shows the same way
  (``train()`` records its pid and process start time). A pid counts only when ``/proc`` shows the same start time
  (a reused pid is not the job) and the process is not a zombie; the supervisors this process started are reaped.
* :func:`stop`: a queued job is marked ``stopped``; a running one gets SIGTERM (it checkpoints and ends
  ``stopped``), and after ``stop_timeout_s`` SIGKILL (then ``stopped`` without a checkpoint at the stop).

Nothing here imports streamlit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np

from ttft.runs import TERMINAL, RunDir, process_start_time, read_json, runs_root, safe_name, write_json_atomic

JOB_FILE = "job.json"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
SUPERVISOR_FILE = "supervisor.txt"
LAUNCH_CONFIG_FILE = "launch-config.json"
LOCKS_DIR = ".locks"
ACTIVE = ("queued", "running", "stopping")
RESUMABLE = ("stopped", "failed", "lost")
KINDS = ("cpu", "gpu")
#: a queued run whose supervisor pid is not recorded yet (the launcher writes it right after starting it)
_START_GRACE_S = 30.0


class JobError(ValueError):
    """A job operation that cannot be done (the message says why)."""


# --------------------------------------------------------------------------- config


@dataclass
class JobConfig:
    """How jobs are queued and stopped. ``from_env`` reads ``TTFT_RUNS_DIR``, ``TTFT_CPU_SLOTS``,
    ``TTFT_GPU_SLOTS`` and ``TTFT_STOP_TIMEOUT``."""

    runs_dir: str | None = None
    cpu_slots: int = 1
    gpu_slots: int = 1
    stop_timeout_s: float = 30.0
    poll_s: float = 0.25

    HELP: ClassVar[dict[str, str]] = {
        "runs_dir": "the runs folder (default: $TTFT_RUNS_DIR or ./runs); the queue is per runs folder",
        "cpu_slots": "how many CPU jobs may run at once; more wait as 'queued'",
        "gpu_slots": "how many GPU jobs may run at once (1: one GPU job at a time)",
        "stop_timeout_s": "seconds between SIGTERM (checkpoint and stop) and SIGKILL",
        "poll_s": "how often a queued job checks for its turn",
    }

    def validate(self) -> "JobConfig":
        for name in ("cpu_slots", "gpu_slots"):
            v = getattr(self, name)
            if type(v) is not int or v < 1:
                raise JobError(f"{name}: must be a positive integer, got {v!r}")
        for name in ("stop_timeout_s", "poll_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise JobError(f"{name}: must be a positive number of seconds, got {v!r}")
        return self

    @classmethod
    def from_env(cls, **overrides: Any) -> "JobConfig":
        env = os.environ
        kw: dict[str, Any] = {}
        for name, var, conv in (("cpu_slots", "TTFT_CPU_SLOTS", int), ("gpu_slots", "TTFT_GPU_SLOTS", int),
                                ("stop_timeout_s", "TTFT_STOP_TIMEOUT", float)):
            if env.get(var):
                try:
                    kw[name] = conv(env[var])
                except ValueError:
                    raise JobError(f"{var}: not a number: {env[var]!r}") from None
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kw).validate()

    @property
    def root(self) -> Path:
        return Path(self.runs_dir).expanduser().absolute() if self.runs_dir else runs_root().absolute()

    def slots(self, kind: str) -> int:
        return self.gpu_slots if kind == "gpu" else self.cpu_slots

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --------------------------------------------------------------------------- processes


# --------------------------------------------------------------------------- locks


# --------------------------------------------------------------------------- the registry


@dataclass
class Job:
    """One run directory as the registry sees it. ``status`` is derived (``lost`` when the process is gone)."""

    path: Path
    status: str
    raw: dict = field(default_factory=dict)  # status.json
    meta: dict = field(default_factory=dict)  # job.json ({} for a run started without the launcher)
    position: int | None = None  # 1-based queue position among queued jobs of the same kind
    note: str = ""

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def run(self) -> RunDir:
        return RunDir(self.path)

    @property
    def kind(self) -> str:
        """'cpu' or 'gpu' (the slot it takes); for a run started without the launcher, from its device."""
        if self.meta.get("kind") in KINDS:
            return self.meta["kind"]
        dev = str(self.run.manifest().get("device") or self.config().get("device") or "")
        return "cpu" if dev == "cpu" else ("gpu" if dev.startswith(("cuda", "mps")) else "")

    @property
    def step(self) -> int:
        return int(self.raw.get("step") or 0)

    @property
    def max_steps(self) -> int | None:
        v = self.raw.get("max_steps")
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
        return shlex.join(["python", "-m", "ttft", *argv]) if argv else ""

    def to_json(self) -> dict:
        return {"id": self.id, "path": str(self.path), "status": self.status, "raw_status": self.raw.get("status"),
                "kind": self.kind, "position": self.position, "step": self.step, "max_steps": self.max_steps,
                "pid": self.pid, "created": self.created, "note": self.note, "error": self.raw.get("error"),
                "command": self.command()}


def _is_run_dir(p: Path) -> bool:
    return p.is_dir() and not p.name.startswith(".") and any(
        (p / f).exists() for f in ("status.json", "config.json", JOB_FILE))


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
    return Job(path=path, status=status, raw=raw, meta=meta, note=note)


def list_jobs(root: Path | str | None = None) -> list[Job]:
    """Every run in the runs folder, newest first, with derived statuses and queue positions."""
    reap_children()
    root = Path(root) if root else runs_root()
    try:
        dirs = [p for p in root.iterdir() if _is_run_dir(p)]
    except FileNotFoundError:
        return []
    jobs = [read_job(p) for p in dirs]
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
    for cand in ((root / p) if not p.is_absolute() else None, p):
        if cand is not None and _is_run_dir(cand):
            return cand.absolute()
    raise JobError(f"no run {str(run)!r} in {root} (give a run id from `python -m ttft jobs list` or a path)")


def get_job(run: str | os.PathLike | Job, root: Path | str | None = None) -> Job:
    reap_children()
    path = resolve(run, root)
    job = read_job(path)
    if job.status == "queued":
        siblings = [read_job(p) for p in path.parent.iterdir() if _is_run_dir(p)]
        assign_positions(siblings)
        job.position = next((j.position for j in siblings if j.path == path), None)
    return job


# --------------------------------------------------------------------------- launching


def _new_run_path(root: Path, label: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(label.lstrip('-')) if label.strip('-') else 'job'}"
    for i in range(1000):
        p = root / (base if i == 0 else f"{base}-{i + 1}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise JobError(f"cannot create a run folder in {root}")


def launch(argv: Sequence[str], cfg: JobConfig | None = None, name: str | None = None,
           kind: str | None = None) -> Job:
    """Queue ``python -m ttft <argv>`` as a background job and start its supervisor; returns the queued job.

    ``train`` commands are validated first and get ``--run-dir`` (a new folder in the runs folder) unless they name
    one; ``train --resume RUN_DIR`` resumes that run. Other commands get a job folder for their status and output.
    """
    cfg = (cfg or JobConfig.from_env()).validate()
    argv = [str(a) for a in argv]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise JobError("nothing to launch: give a ttft command, e.g. train --config FILE")
    if kind is not None and kind not in KINDS:
        raise JobError(f"kind: must be cpu or gpu, got {kind!r}")
    config = None
    if argv[0] == "train":
        tcfg, run_dir, resume_dir = parse_train_argv(argv)
        kind = kind or device_kind(tcfg.device)
        config = tcfg.to_json()
        if resume_dir:
            job = get_job(resume_dir, cfg.root)
            if job.status not in RESUMABLE:
                raise JobError(f"{job.id} is {job.status}: only a stopped, failed or lost run can be resumed")
            return _enqueue(job.path, argv, kind, cfg, config)
        if run_dir:
            path = Path(run_dir).expanduser().absolute()
            if _is_run_dir(path):
                raise JobError(f"{path} already holds a run: resume it, or choose another --run-dir")
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = _new_run_path(cfg.root, name or tcfg.mode)
            argv = [*argv, "--run-dir", str(path)]
    else:
        kind = kind or "cpu"
        path = _new_run_path(cfg.root, name or argv[0])
    return _enqueue(path, argv, kind, cfg, config)


_CLEARED_ON_QUEUE = ("pid", "pid_start", "ended", "error", "traceback", "exit_code", "exit_signal", "stop_requested",
                     "note", "supervisor_pid", "supervisor_start", "slot")


def _enqueue(path: Path, argv: list[str], kind: str, cfg: JobConfig, config: dict | None) -> Job:
    path = Path(path).absolute()
    now = time.time()
    old = read_json(path / JOB_FILE, {}) or {}
    meta = {"argv": argv, "kind": kind, "slots": cfg.slots(kind), "stop_timeout_s": cfg.stop_timeout_s,
            "poll_s": cfg.poll_s, "cwd": os.getcwd(), "python": sys.executable,
            "created": old.get("created", now), "queued_at": now, "launches": int(old.get("launches", 0)) + 1,
            "config": config if config is not None else old.get("config")}
    write_json_atomic(path / JOB_FILE, meta)
    with run_lock(path):
        st = {k: v for k, v in RunDir(path).status().items() if k not in _CLEARED_ON_QUEUE}
        st.update(status="queued", queued_at=now, kind=kind, updated=now)
        write_json_atomic(path / "status.json", st)
    sup = _spawn_detached([sys.executable, "-m", "ttft", "jobs", "wait-and-run", str(path)], path / SUPERVISOR_FILE,
                          cwd=meta["cwd"])
    with run_lock(path):
        run = RunDir(path)
        if run.status().get("status") == "queued" and "supervisor_pid" not in run.status():
            run.update_status(supervisor_pid=sup.pid, supervisor_start=process_start_time(sup.pid))
    return get_job(path)


# --------------------------------------------------------------------------- the supervisor


def _queue_head(path: Path, kind: str) -> bool:
    """Whether this run is first among the queued runs of its kind in its runs folder."""
    root = path.parent
    queued = []
    for p in root.iterdir():
        if not _is_run_dir(p):
            continue
        raw = read_json(p / "status.json", {}) or {}
        if raw.get("status") != "queued" or raw.get("kind", (read_json(p / JOB_FILE, {}) or {}).get("kind")) != kind:
            continue
        if p != path and derive_status(raw, {})[0] != "queued":
            continue  # a dead waiter does not hold the queue
        queued.append((float(raw.get("queued_at") or 0), p.name, p))
    return bool(queued) and min(queued)[2] == path


def wait_and_run(run_dir: str | os.PathLike) -> int:
    """The supervisor of one job (``python -m ttft jobs wait-and-run RUN``): wait for the turn and a slot, run the
    command as a child holding the slot lock, record a final status if the child did not."""
    path = Path(run_dir).absolute()
    run = RunDir(path)
    meta = read_json(path / JOB_FILE)
    if not meta:
        print(f"{path}: no {JOB_FILE}", file=sys.stderr)
        return 2
    kind, slots, poll = meta["kind"], int(meta.get("slots", 1)), float(meta.get("poll_s", 0.25))
    me = {"supervisor_pid": os.getpid(), "supervisor_start": process_start_time(os.getpid())}
    with run_lock(path):
        st = run.status()
        if st.get("status") != "queued":
            return 0
        if st.get("supervisor_pid") not in (None, os.getpid()) and process_alive(st.get("supervisor_pid"),
                                                                                  st.get("supervisor_start")):
            print(f"{path}: another supervisor ({st['supervisor_pid']}) owns this job", file=sys.stderr)
            return 0
        run.update_status(**me)
    flag = {"stop": False}
    child: list[subprocess.Popen] = []

    def on_signal(signum, frame):
        if child:
            _signal(child[0].pid, signal.SIGTERM)  # the job checkpoints and stops
        else:
            flag["stop"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    got = None
    while got is None:
        if flag["stop"]:
            with run_lock(path):
                if run.status().get("status") == "queued":
                    run.update_status(status="stopped", ended=time.time(), note="stopped while queued")
            return 0
        st = run.status()
        if st.get("status") != "queued" or st.get("supervisor_pid") != os.getpid():
            return 0  # stopped, deleted or taken over while waiting
        if _queue_head(path, kind):
            got = try_acquire_slot(path.parent, kind, slots, holder=path.name)
        if got is None:
            time.sleep(poll)
    fd, slot = got
    with run_lock(path):
        st = run.status()
        if st.get("status") != "queued" or flag["stop"]:
            if st.get("status") == "queued":
                run.update_status(status="stopped", ended=time.time(), note="stopped while queued")
            return 0
        with open(path / STDOUT_FILE, "ab") as out, open(path / STDERR_FILE, "ab") as err:
            p = subprocess.Popen([sys.executable, "-m", "ttft", *meta["argv"]], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err, cwd=meta.get("cwd"), env=_job_env(), pass_fds=(fd,))
        child.append(p)
        run.update_status(status="running", pid=p.pid, pid_start=process_start_time(p.pid), slot=f"{kind}-{slot}",
                          started=time.time())
    print(f"{time.strftime('%H:%M:%S')} started pid {p.pid} in slot {kind}-{slot}: {shlex.join(meta['argv'])}",
          flush=True)
    rc = p.wait()
    os.close(fd)
    finalize(path, rc)
    print(f"{time.strftime('%H:%M:%S')} pid {p.pid} exited with {rc}; status {run.status().get('status')}",
          flush=True)
    return 0


def _tail(path: Path, n_bytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def finalize(path: Path, rc: int) -> None:
    """Record how the job's process ended when it did not write a final status itself."""
    run = RunDir(Path(path))
    with run_lock(run.path):
        st = run.status()
        now = time.time()
        if st.get("status") in TERMINAL:
            run.update_status(exit_code=rc)
        elif rc == 0:
            run.update_status(status="finished", exit_code=0, ended=now)
        elif rc > 0:
            tail = _tail(run.path / STDERR_FILE)
            last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), f"exit status {rc}")
            run.update_status(status="failed", exit_code=rc, ended=now, error=st.get("error") or last.strip(),
                              traceback=st.get("traceback") or tail)
        else:
            name = _signame(-rc)
            if st.get("stop_requested"):
                run.update_status(status="stopped", exit_code=rc, exit_signal=name, ended=now,
                                  note=f"ended by {name} before it saved a checkpoint")
            else:
                run.update_status(exit_code=rc, exit_signal=name)  # the registry shows it as lost


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


# --------------------------------------------------------------------------- stop, resume, delete


def stop(run: str | os.PathLike | Job, cfg: JobConfig | None = None, wait: bool = False,
         timeout: float | None = None) -> Job:
    """Stop a job. Queued: marked ``stopped`` at once. Running: SIGTERM (checkpoint, ``stopped``), then SIGKILL
    after ``timeout`` (default ``stop_timeout_s`` of the job). With ``wait=False`` a detached watchdog
    (``python -m ttft jobs stop RUN``) does the waiting and escalation, so the caller returns at once."""
    cfg = cfg or JobConfig.from_env()
    job = get_job(run, cfg.root)
    path = job.path
    if timeout is None:
        timeout = float(job.meta.get("stop_timeout_s", cfg.stop_timeout_s))
    if job.status == "queued":
        with run_lock(path):
            r = RunDir(path)
            if r.status().get("status") == "queued":
                r.update_status(status="stopped", ended=time.time(), note="stopped while queued")
        sup = job.raw.get("supervisor_pid")
        if process_alive(sup, job.raw.get("supervisor_start")):
            _signal(sup, signal.SIGTERM)
        return get_job(path)
    if job.status not in ("running", "stopping"):
        return job
    pid, start = job.raw.get("pid"), job.raw.get("pid_start")
    if process_alive(pid, start):
        with run_lock(path):
            RunDir(path).update_status(stop_requested=time.time(), status="stopping")
        _signal(pid, signal.SIGTERM)
    if not wait:
        _spawn_detached([sys.executable, "-m", "ttft", "jobs", "stop", str(path), "--timeout", str(timeout)], None)
        return get_job(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_alive(pid, start):
        time.sleep(0.05)
    killed = process_alive(pid, start)
    if killed:
        for p in [pid, *_descendants(pid)]:
            _signal(p, signal.SIGKILL)
        end = time.monotonic() + 10
        while time.monotonic() < end and process_alive(pid, start):
            time.sleep(0.05)
    # the job writes its final status (or its supervisor records the exit): give it a moment, then make sure a
    # job we stopped does not end up 'lost'
    end = time.monotonic() + (1 if killed else 5)
    while time.monotonic() < end and get_job(path).status in ACTIVE:
        time.sleep(0.05)
    with run_lock(path):
        r = RunDir(path)
        if r.status().get("status") not in TERMINAL and not process_alive(pid, start):
            why = f"killed with SIGKILL {timeout:g} s after SIGTERM" if killed else "ended by SIGTERM"
            r.update_status(status="stopped", ended=time.time(), note=f"{why} before it saved a checkpoint")
    return get_job(path)


def resume(run: str | os.PathLike | Job, cfg: JobConfig | None = None) -> Job:
    """Queue a stopped, failed or lost run again: ``train --resume RUN`` from its last checkpoint (a run that never
    started is launched again with its original command)."""
    cfg = cfg or JobConfig.from_env()
    job = get_job(run, cfg.root)
    if job.status not in RESUMABLE:
        raise JobError(f"{job.id} is {job.status}: only a stopped, failed or lost run can be resumed")
    if (job.path / "config.json").exists():
        argv = ["train", "--resume", str(job.path)]
        kind = job.meta.get("kind") or device_kind(job.config().get("device"))
    elif job.meta.get("argv"):
        argv, kind = list(job.meta["argv"]), job.meta.get("kind", "cpu")
    else:
        raise JobError(f"{job.id}: nothing to resume (no config.json and no recorded command)")
    return _enqueue(job.path, argv, kind, cfg, job.meta.get("config") or job.config() or None)


def delete(run: str | os.PathLike | Job, cfg: JobConfig | None = None) -> Path:
    """Delete a run folder. Refuses a running job (stop it first); a queued one is stopped first."""
    cfg = cfg or JobConfig.from_env()
    job = get_job(run, cfg.root)
    if job.status in ("running", "stopping"):
        raise JobError(f"{job.id} is {job.status}: stop it before deleting it")
    if job.status == "queued":
        job = stop(job, cfg)
        if job.status in ACTIVE:
            raise JobError(f"{job.id} is {job.status}: could not stop it")
    shutil.rmtree(job.path)
    return job.path


# --------------------------------------------------------------------------- the command a config gives


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "ttft", *argv])


# --------------------------------------------------------------------------- metrics (cheap to refresh)


