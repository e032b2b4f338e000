"""Processes of jobs: liveness (pid + start time), signals, detached spawning, slot locks, device kinds."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ttft.runs.rundir import LOCKS_DIR, process_start_time

#: set by a job's supervisor for the job's process: the job folder (see :mod:`ttft.runs.lifecycle`)
JOB_DIR_ENV = "TTFT_JOB_DIR"


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
    return stat[stat.rfind(")") + 2 :][:1] or None


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
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _signal(pid: Any, sig: int) -> bool:
    """Send ``sig`` to one process; never to a pid <= 0 (a process group, or every process)."""
    if type(pid) is not int or pid <= 0:
        return False
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _spawn_detached(argv: list[str], log: Path | None, cwd: str | None = None) -> subprocess.Popen:
    log_f = open(log, "ab") if log else None
    try:
        p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_f or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log_f else subprocess.DEVNULL,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        if log_f is not None:
            log_f.close()
    with _CHILDREN_LOCK:
        _CHILDREN.append(p)
    return p


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
