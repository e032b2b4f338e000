"""metrics.jsonl read incrementally as columns, a run's progress, and log tails (cheap to refresh).

A damaged line (not JSON, not an object, nested too deeply, an integer too long) is skipped; a value that is not a
finite number (a string, ``Infinity``) is NaN in its column; a file that cannot be read gives empty metrics with the
reason in :attr:`Metrics.problem`. Long runs are drawn from :meth:`Metrics.downsample` (a few thousand points, the
minimum and maximum of each stretch kept)."""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ttft.runs.rundir import _tail

#: how many points a live chart needs at most (the minimum and maximum of each stretch of steps are kept)
MAX_POINTS = 4000


@dataclass
class Metrics:
    """metrics.jsonl as columns: float arrays (NaN where a line lacks the key) and the ``task`` strings."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    tasks: list = field(default_factory=list)
    n: int = 0
    problem: str = ""  # why the file could not be read ('' when it could, or is missing)
    skipped: int = 0  # damaged lines left out (not JSON, not an object, nested too deeply)

    def col(self, name: str) -> np.ndarray:
        c = self.columns.get(name)
        return c if c is not None else np.full(self.n, np.nan)

    def take(self, rows: np.ndarray) -> Metrics:
        """The metrics of these rows (indices, in order)."""
        rows = np.asarray(rows, dtype=int)
        tasks = [self.tasks[i] for i in rows] if self.tasks else []
        return Metrics(
            columns={k: c[rows] for k, c in self.columns.items()},
            tasks=tasks,
            n=len(rows),
            problem=self.problem,
            skipped=self.skipped,
        )

    def task_rows(self) -> dict[str, np.ndarray]:
        """The row indices of each task of a per-task run, tasks in the order they were trained ({} for a run with
        one adapter). Computed once per Metrics (its arrays are never changed in place: a read that grows the file
        makes a new Metrics), so charts and tables over many tasks do not compare every row per task."""
        cached = self.__dict__.get("_task_rows")
        if cached is None:
            groups: dict[str, list[int]] = {}
            for i, t in enumerate(self.tasks):
                if t is not None:
                    groups.setdefault(str(t), []).append(i)
            cached = self.__dict__["_task_rows"] = {t: np.asarray(v, dtype=int) for t, v in groups.items()}
        return cached

    @property
    def note(self) -> str:
        """What of the file is missing from these metrics, in one line ('' when nothing)."""
        if self.problem:
            return self.problem
        return f"{self.skipped} damaged line(s) of metrics.jsonl left out" if self.skipped else ""

    def downsample_rows(self, max_points: int = MAX_POINTS, key: str = "loss") -> np.ndarray:
        """Indices of at most about ``max_points`` rows that draw the same chart: all rows when there are fewer;
        else, per run of consecutive rows, the ones with the smallest and the largest ``key`` (and the first and
        last row), so spikes and dips stay visible. Rows without ``key`` (evaluation lines) are kept the same way
        on ``eval_loss``. A per-task run is downsampled per task (each task's curve keeps its shape)."""
        if self.n <= max_points:
            return np.arange(self.n)
        groups = list(self.task_rows().values()) if self.tasks else [np.arange(self.n)]
        if self.tasks and (untasked := np.setdiff1d(np.arange(self.n), np.concatenate(groups))).size:
            groups.append(untasked)  # lines without a task (rare): kept the same way
        budget = max(8, max_points // len(groups))
        main, ev = self.col(key), self.col("eval_loss")
        keep = np.zeros(self.n, dtype=bool)
        for idx in groups:
            has = ~np.isnan(main[idx])
            rest = idx[~has]
            has_ev = ~np.isnan(ev[rest])
            evals = _min_max_rows(rest[has_ev], ev[rest][has_ev], budget // 4)
            other = rest[~has_ev]
            if len(other):  # lines with neither (rare): evenly spaced
                other = other[np.unique(np.linspace(0, len(other) - 1, min(len(other), budget // 8)).astype(int))]
            keep[evals] = keep[other] = True
            keep[_min_max_rows(idx[has], main[idx][has], budget - len(evals) - len(other))] = True
        return np.flatnonzero(keep)

    def downsample(self, max_points: int = MAX_POINTS, key: str = "loss") -> Metrics:
        """These metrics with at most about ``max_points`` rows (:meth:`downsample_rows`); itself when shorter."""
        return self if self.n <= max_points else self.take(self.downsample_rows(max_points, key))


def _min_max_rows(idx: np.ndarray, v: np.ndarray, budget: int) -> np.ndarray:
    """Of rows ``idx`` with values ``v``: all when they are at most ``budget``, else the first, the last, and the
    minimum and maximum of each of ``budget // 2`` equal stretches."""
    n = len(idx)
    if n <= budget:
        return idx
    if budget < 4:
        return idx[np.unique([0, n - 1])][: max(budget, 0)]
    per = -(-n // ((budget - 2) // 2))  # rows per stretch
    rows = -(-n // per)
    padded = np.full(rows * per, np.nan)
    padded[:n] = v
    grid = padded.reshape(rows, per)
    base = np.arange(rows) * per
    lo, hi = base + np.nanargmin(grid, axis=1), base + np.nanargmax(grid, axis=1)
    sel = np.unique(np.concatenate([[0, n - 1], lo, hi]))
    return idx[sel[sel < n]]


def _int_or_nan(text: str) -> float:
    return int(text) if len(text) <= 300 else math.nan  # an integer too long for a float is no metric value


def _load(line: str) -> dict | None:
    try:
        r = json.loads(line)
    except RecursionError:
        return None
    except ValueError:  # not JSON, or an integer too long to convert (that value alone becomes NaN)
        try:
            r = json.loads(line, parse_int=_int_or_nan)
        except (ValueError, RecursionError):
            return None
    return r if isinstance(r, dict) else None


def _parse_lines(blob: bytes) -> tuple[list[dict], int]:
    """The objects of these whole lines, and how many non-blank lines were damaged (left out)."""
    text = blob.decode("utf-8", "replace")
    try:
        rows = json.loads("[" + text.rstrip("\n").replace("\n", ",") + "]")
        if all(isinstance(r, dict) for r in rows):
            return rows, 0
    except (ValueError, RecursionError):
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    rows = [r for line in lines if (r := _load(line)) is not None]
    return rows, len(lines) - len(rows)


def _number(v: object) -> float:
    """A metrics value as a float: NaN unless it is a finite number (a bool counts as 0/1)."""
    if isinstance(v, (int, float)):
        try:
            f = float(v)
        except OverflowError:
            return math.nan
        return f if math.isfinite(f) else math.nan
    return math.nan


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
        vals = [r.get(k, nan) for r in rows]
        try:
            a = np.array(vals)
        except (TypeError, ValueError, OverflowError):
            a = np.array([], dtype=object)
        if a.ndim == 1 and len(a) == len(vals) and a.dtype.kind in "fiub":
            a = a.astype(float)
            a[np.isinf(a)] = np.nan
        else:  # null, strings, lists, integers too large for a float: NaN where a value is not a finite number
            a = np.array([_number(v) for v in vals], dtype=float)
            if np.isnan(a).all():
                continue  # not numeric
        cols[k] = a
    tasks = [t if isinstance(t := r.get("task"), str) or t is None else str(t) for r in rows] if "task" in keys else []
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
                        self._append(*_parse_lines(blob[:end]))
            except FileNotFoundError:
                self._reset()
            except OSError as e:  # a folder where the file should be, an unreadable file
                self._reset()
                self.m = Metrics(problem=f"{self.path.name} cannot be read ({e.strerror or type(e).__name__})")
            return self.m

    def _append(self, rows: list[dict], skipped: int = 0) -> None:
        if not rows:
            if skipped:
                self.m = Metrics(self.m.columns, self.m.tasks, self.m.n, skipped=self.m.skipped + skipped)
            return
        new, tasks = _columns(rows)
        old, n_old, n_new = self.m.columns, self.m.n, len(rows)
        cols = {}
        for k in dict.fromkeys([*old, *new]):
            a = old.get(k, np.full(n_old, np.nan)) if n_old else np.empty(0)
            cols[k] = np.concatenate([a, new.get(k, np.full(n_new, np.nan))])
        t = (self.m.tasks or [None] * n_old) + (tasks or [None] * n_new) if (tasks or self.m.tasks) else []
        self.m = Metrics(columns=cols, tasks=t, n=n_old + n_new, skipped=self.m.skipped + skipped)


#: where the lines a resumed run logs again are moved (beside metrics.jsonl)
SUPERSEDED_FILE = "metrics-superseded.jsonl"


def drop_steps_after(path: Path | str, step: float) -> int:
    """Take the lines past ``step`` (and a half-written last line) out of a metrics.jsonl, before a run resumed
    from its checkpoint at ``step`` logs those steps again: the file then never repeats a step, so the chart
    (which reads the file) never goes backwards. The lines taken out are appended to
    ``metrics-superseded.jsonl`` beside it; metrics.jsonl is replaced atomically. Returns how many were taken."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    keep: list[bytes] = []
    drop: list[bytes] = []
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            drop.append(line + b"\n")  # a process killed mid-line: the next append would join it
            continue
        r = _load(line.decode("utf-8", "replace"))
        s = r.get("step") if r is not None else None
        late = isinstance(s, (int, float)) and not isinstance(s, bool) and s > step
        (drop if late else keep).append(line)
    if not drop:
        return 0
    with open(path.with_name(SUPERSEDED_FILE), "ab") as f:
        f.write(b"".join(drop))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(b"".join(keep))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(drop)


#: how many metrics files the process keeps a reader (and their columns) for; the least recently read goes first
MAX_READERS = 32
_READERS: OrderedDict[str, MetricsReader] = OrderedDict()
_READERS_LOCK = threading.Lock()


def read_metrics(path: Path | str) -> Metrics:
    """The metrics of a run's metrics.jsonl from the process's reader of that file (incremental: a refresh parses
    only new lines, and returns the same object while the file is unchanged). At most :data:`MAX_READERS` readers
    are kept, so memory is bounded by the runs being looked at, not by how often or how long."""
    key = str(Path(path).absolute())
    with _READERS_LOCK:
        r = _READERS.get(key)
        if r is None:
            r = _READERS[key] = MetricsReader(key)
            while len(_READERS) > MAX_READERS:
                _READERS.popitem(last=False)
        else:
            _READERS.move_to_end(key)
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
