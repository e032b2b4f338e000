"""metrics.jsonl read incrementally as columns, a run's progress, and log tails (cheap to refresh)."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ttft.runs.rundir import _tail


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

    ino: int | None
    offset: int
    m: Metrics

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
