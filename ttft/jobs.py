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
_PKG_PARENT = str(Path(__file__).resolve().parents[1])


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

#: supervisors (and stop watchdogs) this process started: polled (reaped) on every registry read
_CHILDREN: list[subprocess.Popen] = []
_CHILDREN_LOCK = threading.Lock()


def reap_children() -> None:
    """Collect the exit status of the processes this process started, so none stays a zombie."""
    with _CHILDREN_LOCK:
        _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat ('R', 'S', 'Z', ...), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return stat[stat.rfind(")") + 2:][:1] or None


def process_alive(pid: Any, start: Any = None, reap: bool = True) -> bool:
    """Whether ``pid`` is a live (non-zombie) process started at ``start`` (seconds since boot, as recorded by
    :func:`ttft.runs.process_start_time`). A different start time means the pid was reused: not our process."""
    if type(pid) is not int or pid <= 0:
        return False
    if reap:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # our own finished child: collect it
    now_start = process_start_time(pid)
    if now_start is None:
        return False
    if start is not None:
        try:
            if abs(now_start - float(start)) > 1e-3:
                return False
        except (TypeError, ValueError):
            return False
    return process_state(pid) not in (None, "Z", "X", "x")


def _descendants(pid: int) -> list[int]:
    """Pids of all descendants of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _job_env() -> dict:
    env = dict(os.environ)
    pp = env.get("PYTHONPATH", "")
    if _PKG_PARENT not in pp.split(os.pathsep):
        env["PYTHONPATH"] = _PKG_PARENT + (os.pathsep + pp if pp else "")
    return env


def _spawn_detached(argv: list[str], log: Path | None, cwd: str | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if log else out,
                             cwd=cwd, env=_job_env(), start_new_session=True, close_fds=True)
    finally:
        if log:
            out.close()
    with _CHILDREN_LOCK:
        _CHILDREN.append(p)
    return p


# --------------------------------------------------------------------------- locks


@contextlib.contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Serialise status transitions of one run between the launcher, its supervisor and stop/delete."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def try_acquire_slot(root: Path, kind: str, slots: int, holder: str = "") -> tuple[int, int] | None:
    """(fd, slot index) of a free ``kind`` slot, locked with ``flock``, or None when all are busy."""
    d = Path(root) / LOCKS_DIR
    d.mkdir(parents=True, exist_ok=True)
    for i in range(slots):
        fd = os.open(d / f"{kind}-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        with contextlib.suppress(OSError):  # who holds it, for people looking at the file
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {holder}\n".encode(), 0)
        return fd, i
    return None


# --------------------------------------------------------------------------- the registry


def device_kind(device: str | None) -> str:
    """'gpu' or 'cpu': which slot a job with this ``device`` option takes."""
    d = (device or "auto").lower()
    if d == "cpu":
        return "cpu"
    if d.startswith("cuda") or d == "mps":
        return "gpu"
    return "gpu" if accelerator_present() else "cpu"


def accelerator_present() -> bool:
    if "torch" in sys.modules:
        import torch

        mps = getattr(torch.backends, "mps", None)
        return bool(torch.cuda.is_available() or (mps is not None and mps.is_available()))
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None and cvd.strip() in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


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


def train_parser():
    """The ``python -m ttft train`` argument parser (alone)."""
    import argparse

    from ttft import cli_train

    p = argparse.ArgumentParser(prog="python -m ttft", exit_on_error=False)
    sub = p.add_subparsers(dest="command", required=True)
    cli_train.register(sub)
    return p


def parse_train_argv(argv: Sequence[str]):
    """(TrainConfig, run_dir or None, resume run dir or None) of a ``train …`` command line; validated."""
    import argparse
    import io

    from ttft import cli_train
    from ttft.train import ConfigError

    argv = list(argv)
    if argv[:1] != ["train"]:
        argv = ["train", *argv]
    p = train_parser()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = p.parse_args(argv)
    except (argparse.ArgumentError, SystemExit) as e:
        msg = str(e) if isinstance(e, argparse.ArgumentError) else err.getvalue().strip().splitlines()[-1:]
        raise JobError(f"bad train command: {msg if isinstance(msg, str) else ' '.join(msg)}") from None
    if args.command != "train":
        raise JobError(f"not a train command: {shlex.join(argv)}")
    base, resume_dir = None, None
    if args.resume is not None:
        resume_dir = args.resume if args.resume is not True else args.run_dir
        if not resume_dir:
            raise JobError("--resume needs the run directory")
        base = read_json(Path(resume_dir) / "config.json")
        if base is None:
            raise JobError(f"--resume {resume_dir}: no config.json there (not a run directory)")
    elif args.config:
        base = read_json(Path(args.config))
        if base is None:
            raise JobError(f"--config {args.config}: missing or not valid JSON")
    try:
        cfg = cli_train.config_from_args(args, base).validate()
    except (ConfigError, ValueError) as e:
        raise JobError(str(e)) from None
    return cfg, args.run_dir, resume_dir


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


def launch_train(tcfg, cfg: JobConfig | None = None, name: str | None = None) -> Job:
    """Queue a training run of a TrainConfig (the app's Launch button). The command is :func:`train_argv` when
    it states the config exactly, else ``train --config <run>/launch-config.json``."""
    cfg = (cfg or JobConfig.from_env()).validate()
    check_launchable(tcfg)
    path = _new_run_path(cfg.root, name or tcfg.mode)
    argv = train_argv(tcfg)
    if argv is None:
        write_json_atomic(path / LAUNCH_CONFIG_FILE, tcfg.to_json())
        argv = ["train", "--config", str(path / LAUNCH_CONFIG_FILE)]
    return _enqueue(path, [*argv, "--run-dir", str(path)], device_kind(tcfg.device), cfg, tcfg.to_json())


def check_launchable(tcfg) -> None:
    """Validate a TrainConfig and the cheap parts of its model source before it is queued (a job that can only
    fail should not wait in the queue). Raises ValueError naming the option."""
    from ttft.models import DEFAULT_MODEL, ModelError, embedded_model_available

    tcfg.validate()
    m = tcfg.model
    if m.base_model == DEFAULT_MODEL:
        if m.init != "random" and not embedded_model_available():
            raise ModelError("base_model: the embedded model is not installed (ttft/assets/model has no weights); "
                             "choose a local model folder or a hub id, or init 'random' to train one from scratch")
    elif m.base_model.startswith((".", "/", "~")) or Path(m.base_model).expanduser().is_dir():
        if not (Path(m.base_model).expanduser() / "config.json").exists():
            raise ModelError(f"base_model: {m.base_model!r} is not a model folder (no config.json)")


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


def train_argv(tcfg) -> list[str] | None:
    """``train …`` flags that give exactly this TrainConfig (options at their default are left out; mode, dataset,
    steps and lr always shown), or None when an option has no flag (then use ``train --config FILE``)."""
    from ttft.train import TrainConfig

    d, dflt = tcfg.to_json(), TrainConfig().to_json()
    argv = ["train"]

    def add(flag: str, v: Any, dv: Any, always: bool = False) -> None:
        if v == dv and not always:
            return
        if isinstance(v, bool):
            argv.append(flag if v else "--no-" + flag[2:])
        elif v is None:
            raise _NoFlag(flag)
        elif isinstance(v, (list, tuple)):
            argv.extend([flag, ",".join(map(str, v))])
        else:
            argv.extend([flag, repr(v) if isinstance(v, float) else str(v)])

    try:
        for k in ("mode", "dataset"):
            add("--" + k.replace("_", "-"), d[k], dflt[k], always=True)
        if d["tasks"] != dflt["tasks"]:
            if not d["tasks"]:
                raise _NoFlag("--tasks")
            add("--tasks", d["tasks"], None)
        for k in ("max_task_tokens", "per_task", "leave_out", "keep_original_colors"):
            add("--" + k.replace("_", "-"), d[k], dflt[k])
        for k in ("base_model", "adapter", "full_finetune", "init", "lora_r", "lora_alpha", "lora_dropout",
                  "target_modules"):
            add("--" + k.replace("_", "-"), d["model"][k], dflt["model"][k], always=k == "base_model")
        if d["model"]["trust_remote_code"] != dflt["model"]["trust_remote_code"]:
            if not d["model"]["trust_remote_code"]:
                raise _NoFlag("--trust-remote-code")
            argv.append("--trust-remote-code")
        for k in ("steps", "lr"):
            add("--" + k, d[k], dflt[k], always=True)
        for k in ("batch_size", "grad_accum", "scheduler", "warmup_steps", "weight_decay"):
            add("--" + k.replace("_", "-"), d[k], dflt[k])
        for k in ("max_seq_len", "format", "loss_on", "chat_template"):
            add("--" + k.replace("_", "-"), d["encoding"][k], dflt["encoding"][k])
        add("--too-long", d["too_long"], dflt["too_long"])
        for k in ("transforms", "colors", "p_bg", "shuffle", "compose"):
            v = d["augment"][k]
            if k == "compose" and v != dflt["augment"][k] and not v:
                raise _NoFlag("--compose")
            add("--" + k.replace("_", "-"), v, dflt["augment"][k])
        for k in ("seed", "device", "val", "val_max_tokens", "eval_steps", "logging_steps", "save_steps", "report_to",
                  "threads"):
            add("--" + k.replace("_", "-"), d[k], dflt[k])
        # options without a flag must be at their default
        flagless = [("save_total_limit", d, dflt), *((k, d["encoding"], dflt["encoding"]) for k in
                                                      ("input_marker", "output_marker")),
                    *((k, d["augment"], dflt["augment"]) for k in ("p_compose", "compose_targets", "seed"))]
        for k, a, b in flagless:
            if a[k] != b[k]:
                raise _NoFlag(k)
    except _NoFlag:
        return None
    # the command must give back exactly this config (new options without a flag end up here)
    try:
        back = parse_train_argv(argv)[0].to_json()
    except JobError:
        return None
    return argv if back == d else None


class _NoFlag(Exception):
    pass


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "ttft", *argv])


# --------------------------------------------------------------------------- metrics (cheap to refresh)


@dataclass
class Metrics:
    """metrics.jsonl as columns: float arrays (NaN where a line lacks the key) and the ``task`` strings."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    tasks: list = field(default_factory=list)
    n: int = 0

    def col(self, name: str) -> np.ndarray:
        c = self.columns.get(name)
        return c if c is not None else np.full(self.n, np.nan)


def _parse_lines(blob: bytes) -> list[dict]:
    text = blob.decode("utf-8", "replace")
    try:
        rows = json.loads("[" + text.rstrip("\n").replace("\n", ",") + "]")
        if all(isinstance(r, dict) for r in rows):
            return rows
    except json.JSONDecodeError:
        pass
    rows = []
    for line in text.splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict):
            rows.append(r)
    return rows


def _columns(rows: list[dict]) -> tuple[dict[str, np.ndarray], list]:
    keys: dict[str, None] = {}
    for r in rows[:50]:
        keys.update(dict.fromkeys(r))
    for r in rows[50:]:
        if not keys.keys() >= r.keys():
            keys.update(dict.fromkeys(r))
    cols, nan = {}, float("nan")
    for k in keys:
        if k == "task":
            continue
        try:
            cols[k] = np.array([r.get(k, nan) for r in rows], dtype=float)
        except (TypeError, ValueError):
            continue  # not numeric
    tasks = [r.get("task") for r in rows] if "task" in keys else []
    return cols, tasks


class MetricsReader:
    """Reads a growing metrics.jsonl incrementally: only the bytes appended since the last read are parsed (a
    half-written last line waits for the next read). A replaced or truncated file is read again from the start."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.ino, self.offset, self.m = None, 0, Metrics()

    def read(self) -> Metrics:
        with self.lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._reset()
                return self.m
            if st.st_ino != self.ino or st.st_size < self.offset:
                self._reset()
                self.ino = st.st_ino
            if st.st_size > self.offset:
                with open(self.path, "rb") as f:
                    f.seek(self.offset)
                    blob = f.read(st.st_size - self.offset)
                end = blob.rfind(b"\n") + 1
                if end:
                    self.offset += end
                    self._append(_parse_lines(blob[:end]))
            return self.m

    def _append(self, rows: list[dict]) -> None:
        if not rows:
            return
        new, tasks = _columns(rows)
        old, n_old, n_new = self.m.columns, self.m.n, len(rows)
        cols = {}
        for k in dict.fromkeys([*old, *new]):
            a = old.get(k, np.full(n_old, np.nan)) if n_old else np.empty(0)
            cols[k] = np.concatenate([a, new.get(k, np.full(n_new, np.nan))])
        t = (self.m.tasks or [None] * n_old) + (tasks or [None] * n_new) if (tasks or self.m.tasks) else []
        self.m = Metrics(columns=cols, tasks=t, n=n_old + n_new)


_READERS: dict[str, MetricsReader] = {}
_READERS_LOCK = threading.Lock()


def read_metrics(path: Path | str) -> Metrics:
    """The metrics of a run's metrics.jsonl (incremental: a refresh parses only new lines)."""
    key = str(Path(path).absolute())
    with _READERS_LOCK:
        r = _READERS.get(key)
        if r is None:
            if len(_READERS) > 64:
                _READERS.clear()
            r = _READERS[key] = MetricsReader(key)
    return r.read()


@dataclass
class Progress:
    step: int
    max_steps: int | None
    fraction: float
    eta_s: float | None
    tokens_per_second: float | None
    loss: float | None
    eval_loss: float | None
    lr: float | None
    elapsed_s: float | None


def _last(a: np.ndarray) -> float | None:
    ok = a[~np.isnan(a)]
    return float(ok[-1]) if ok.size else None


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


def format_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    mnt, sec = divmod(rem, 60)
    return f"{h}:{mnt:02d}:{sec:02d}" if h else f"{mnt}:{sec:02d}"


def tail_text(path: Path | str, lines: int = 40, n_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a text file (read from its end only)."""
    text = _tail(Path(path), n_bytes)
    return "\n".join(text.splitlines()[-lines:])
