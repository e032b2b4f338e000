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
half-written last line in ``metrics.jsonl``. Nothing here imports streamlit.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "stopping", "stopped", "finished", "failed", "lost")
TERMINAL = ("stopped", "finished", "failed")


def runs_root() -> Path:
    """Where runs live: ``$TTFT_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("TTFT_RUNS_DIR", "runs")).expanduser()


def new_run_id(prefix: str = "run") -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{prefix}-{os.getpid() % 10000:04d}"


def safe_name(s: str) -> str:
    """A file-system-safe version of a task id or name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:120] or "_"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that readers see the old or the new file, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")
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
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def append_jsonl(path: Path, obj: dict) -> None:
    """Append one line in a single write (so a reader sees whole lines)."""
    line = json.dumps(obj, default=_json_default, separators=(",", ":")) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def read_jsonl(path: Path) -> list[dict]:
    """All complete lines of a JSONL file (a half-written last line is ignored)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    except FileNotFoundError:
        pass
    return out


def process_start_time(pid: int) -> float | None:
    """Start time of a process (seconds since boot, from /proc), or None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rfind(")") + 2:].split()
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
        return read_json(self.config_file, {}) or {}

    def manifest(self) -> dict:
        return read_json(self.manifest_file, {}) or {}

    def status(self) -> dict:
        return read_json(self.status_file, {}) or {}

    def metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_file)

    def update_status(self, **fields: Any) -> dict:
        st = self.status()
        st.update(fields)
        st["updated"] = time.time()
        write_json_atomic(self.status_file, st)
        return st

    def log(self, msg: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg.rstrip("\n") + "\n")

    def checkpoints(self, sub: str | None = None) -> list[Path]:
        d = self.checkpoints_dir / sub if sub else self.checkpoints_dir
        # complete ones only: Trainer writes trainer_state.json last, so a checkpoint killed mid-save (SIGKILL, OOM)
        # lacks it and must not be resumed from
        cps = [p for p in d.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
               and (p / "trainer_state.json").exists()]
        return sorted(cps, key=lambda p: int(p.name.split("-")[-1]))

    def last_checkpoint(self, sub: str | None = None) -> Path | None:
        cps = self.checkpoints(sub)
        return cps[-1] if cps else None


def list_runs(root: Path | None = None) -> Iterator[RunDir]:
    root = Path(root) if root else runs_root()
    if not root.is_dir():
        return iter(())
    dirs = [RunDir(p) for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()]
    return iter(sorted(dirs, key=lambda r: r.config_file.stat().st_mtime, reverse=True))


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
