"""The run directory: the contract between a job (writer) and the app (reader).

Layout of ``<runs root>/<run id>/`` (documented in docs/run-directory.md):

* ``config.json``    every option of the run (written once, before any work)
* ``manifest.json``  versions, dataset, seed, device (written at start)
* ``status.json``    ``{"status": ..., "step": ..., "max_steps": ..., "pid": ..., "pid_start": ..., ...}``
                     rewritten atomically on every change
* ``metrics.jsonl``  one JSON object per line, appended (a line is complete or absent)
* ``log.txt``        human-readable log
* ``checkpoints/``   Trainer checkpoints (``checkpoint-<step>/``)
* ``adapter/``       the final adapter (peft format) or model; ``adapters/<task id>/`` with ``--per-task``

Writers use :func:`write_json_atomic`; readers never lock and tolerate a
half-written last line in ``metrics.jsonl``. Readers never raise on a damaged file
(unreadable, not UTF-8, not JSON, a JSON list, nested too deeply, a folder where a
file should be): :func:`ttft.runs.integrity.read_json_checked` says what is wrong, the registry shows
such a run as ``corrupt``. Nothing here imports streamlit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttft.core.names import name_problem
from ttft.runs.integrity import checkpoint_problem, read_json_checked

#: ``corrupt``: the registry could not read the run's status.json or job.json (the reason is in the job's note)
STATUSES = ("queued", "running", "stopping", "stopped", "finished", "failed", "lost", "corrupt")
TERMINAL = ("stopped", "finished", "failed")

#: space kept in every run folder so that its last status.json can be written on a full disk
RESERVE_FILE = ".reserve"
RESERVE_BYTES = 64 * 1024


def runs_root() -> Path:
    """Where runs live: ``$TTFT_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("TTFT_RUNS_DIR", "runs")).expanduser()


def new_run_id(prefix: str = "run") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{prefix}-{os.getpid() % 10000:04d}"


def safe_name(s: str) -> str:
    """A file-system-safe version of a task id or name: only letters, digits, ``.``, ``_`` and ``-``, at most 120
    characters, and never empty, ``.`` or ``..`` (so ``root / safe_name(x)`` is always a child of ``root``)."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:120]
    return out if out.strip(".") else "_" + out


def child(root: Path | str, name: str, what: str = "name") -> Path:
    """``root / name`` for a name that stays inside ``root`` (see :func:`ttft.core.data.name_problem`); ValueError
    naming ``what`` otherwise."""
    if why := name_problem(name, what):
        raise ValueError(why)
    return Path(root) / name


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that readers see the old or the new file, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _json_default(o: Any) -> Any:
    if hasattr(o, "to_json"):
        return o.to_json()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON object in ``path``, or ``default`` when the file is missing or is not a readable JSON object."""
    obj, _ = read_json_checked(path)
    return default if obj is None else obj


def read_json_dict(path: Path) -> dict:
    """The JSON object in ``path``, or {} (missing or damaged)."""
    return read_json(path, None) or {}


def _is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


#: less free space than this on a run's file system counts as a full disk
DISK_FULL_BYTES = 1024 * 1024


def disk_free(path: Path | str) -> int | None:
    """Free bytes on the file system holding ``path`` (None when it cannot be told)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_full_error(exc: BaseException, path: Path | str) -> str | None:
    """'disk full …' when ``exc`` (or an exception it came from) is a write that failed for lack of space: an
    ENOSPC/EDQUOT OSError, or an I/O error of a library (torch's zip writer, safetensors' StorageFull) while the
    disk holding ``path`` is (nearly) full; another error on a full disk gets 'the disk … is full'. None when the
    disk has room."""
    seen: set[int] = set()
    e: BaseException | None = exc
    io_like = False
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = str(e).lower()
        if _is_disk_full(e) or "no space left" in text or "storagefull" in text:
            return f"disk full: no space left on the device holding {path}"
        io_like = io_like or isinstance(e, OSError) or any(w in text for w in _WRITE_ERRORS)
        e = e.__cause__ or e.__context__
    free = disk_free(path)
    if free is not None and free < DISK_FULL_BYTES:
        if io_like:
            return f"disk full: {free // 1024} KB left on the device holding {path}"
        return f"the disk holding {path} is full ({free // 1024} KB left)"
    return None


#: what libraries say when writing a file fails (torch's zip writer, safetensors, ...)
_WRITE_ERRORS = (
    "no space",
    "storagefull",
    "write failed",
    "file write",
    "disk quota",
    "pytorchstreamwriter",
    "inline_container",
    "unexpected pos",
    "ioerror",
)


def append_jsonl(path: Path, obj: dict) -> None:
    """Append one line in a single write (so a reader sees whole lines)."""
    line = json.dumps(obj, default=_json_default, separators=(",", ":")) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def read_jsonl(path: Path) -> list[dict]:
    """All complete lines of a JSONL file that hold a JSON object (a half-written last line, a damaged line, a
    missing or unreadable file are skipped)."""
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError):
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except OSError:
        pass
    return out


def process_start_time(pid: int) -> float | None:
    """Start time of a process (seconds since boot, from /proc), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


@dataclass
class RunDir:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    # files
    config_file = property(lambda self: self.path / "config.json")
    manifest_file = property(lambda self: self.path / "manifest.json")
    status_file = property(lambda self: self.path / "status.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    log_file = property(lambda self: self.path / "log.txt")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    adapter_dir = property(lambda self: self.path / "adapter")
    adapters_dir = property(lambda self: self.path / "adapters")

    def exists(self) -> bool:
        return self.config_file.exists()

    def config(self) -> dict:
        return read_json_dict(self.config_file)

    def manifest(self) -> dict:
        return read_json_dict(self.manifest_file)

    def status(self) -> dict:
        return read_json_dict(self.status_file)

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file)

    def update_status(self, **fields: Any) -> dict:
        """Merge ``fields`` into status.json (a damaged one is replaced). On a full disk the space kept by
        :meth:`reserve_space` is given back first, so the status that says why a run ended can still be written."""
        st = self.status()
        st.update(fields)
        st["updated"] = time.time()
        try:
            write_json_atomic(self.status_file, st)
        except OSError as e:
            if not _is_disk_full(e) or not self.release_reserve():
                raise
            write_json_atomic(self.status_file, st)
        return st

    # space kept for the last status write (a full disk must not hide why a run ended)

    reserve_file = property(lambda self: self.path / RESERVE_FILE)

    def reserve_space(self, nbytes: int = RESERVE_BYTES) -> bool:
        """Keep ``nbytes`` of disk in ``.reserve`` (real blocks, not a sparse file); False when it cannot."""
        if self.reserve_file.exists():
            return True
        try:
            fd = os.open(self.reserve_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError:
            return False
        try:
            os.write(fd, b"\0" * nbytes)
            os.fsync(fd)
            return True
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(self.reserve_file)
            return False
        finally:
            os.close(fd)

    def release_reserve(self) -> bool:
        """Give the reserved space back; True when there was some."""
        try:
            os.unlink(self.reserve_file)
            return True
        except OSError:
            return False

    def log(self, msg: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg.rstrip("\n") + "\n")

    def checkpoints(self, sub: str | None = None) -> list[Path]:
        d = self.checkpoints_dir / sub if sub else self.checkpoints_dir
        # complete ones only: Trainer writes trainer_state.json last, so a checkpoint killed mid-save (SIGKILL, OOM)
        # lacks it and must not be resumed from
        try:
            cps = [
                p
                for p in d.glob("checkpoint-*")
                if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()
            ]
        except OSError:
            return []
        return sorted(cps, key=lambda p: int(p.name.split("-")[-1]))

    def last_checkpoint(self, sub: str | None = None) -> Path | None:
        cps = self.checkpoints(sub)
        return cps[-1] if cps else None

    def intact_checkpoint(self, sub: str | None = None) -> tuple[Path | None, list[tuple[Path, str]]]:
        """The newest checkpoint whose files are whole (:func:`checkpoint_problem`), and the newer ones skipped
        with the reason."""
        skipped: list[tuple[Path, str]] = []
        for cp in reversed(self.checkpoints(sub)):
            why = checkpoint_problem(cp)
            if why is None:
                return cp, skipped
            skipped.append((cp, why))
        return None, skipped


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def list_runs(root: Path | None = None) -> Iterator[RunDir]:
    root = Path(root) if root else runs_root()
    try:
        dirs = [RunDir(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]
    except OSError:
        return iter(())
    return iter(sorted(dirs, key=lambda r: _mtime(r.config_file), reverse=True))


#: the files whose presence marks a folder as a run ttft wrote (a run's status, or a job's command): the jobs verbs
#: act only on such folders (a model folder has a config.json too)
RUN_MARKERS = ("status.json", "job.json")


def is_ttft_run(p: Path) -> bool:
    """Whether ``p`` is a folder that ttft wrote a run's status or a job's command into."""
    return os.path.isdir(p) and any(os.path.lexists(os.path.join(p, f)) for f in RUN_MARKERS)


JOB_FILE = "job.json"


STDOUT_FILE = "stdout.txt"


STDERR_FILE = "stderr.txt"


SUPERVISOR_FILE = "supervisor.txt"


LAUNCH_CONFIG_FILE = "launch-config.json"


LOCKS_DIR = ".locks"


ACTIVE = ("queued", "running", "stopping")


RESUMABLE = ("stopped", "failed", "lost")


def _tail(path: Path, n_bytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
