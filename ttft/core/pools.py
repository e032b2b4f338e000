"""Pools of pairs: the RE-ARC format (michaelhodel/re-arc writes one file per task id holding a JSON list of
``{"input": grid, "output": grid}`` objects, e.g. 1,000 generated examples of one ARC training task).

A pool loads as a :class:`ttft.core.data.Task` with ``pool=True``: its good pairs are the task's train pairs and it
has no test pair, so everything that reads tasks keeps working (statistics, the Tasks page, augmentations); finetune
mode draws a few pairs of it per sample (:mod:`ttft.engine.samples`). Each pair is checked like a task's pair; a bad
one is reported (file, task, pair, field) and skipped, the others are kept.

A RE-ARC file is plain: single-digit cells, the two keys, brackets, commas. Such text is read by a vectorised
reader (numpy over the file's bytes, about 30x faster than ``json.loads``; ``bench/bench_pools.py``); anything else
(other keys, numbers that are not one digit, a bad grid, other encodings) goes through ``json`` and the exact
per-pair checks, which locate every problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ttft.core.data import Dataset, Pair, Task, TaskError, _describe, _parse_json_bytes, _parse_pair, task_id_problem

#: how many bad pairs of one pool are reported one by one (then one line counts them all)
MAX_BAD_REPORTED = 5
#: the fewest good pairs a pool needs (a sample holds at least one train pair and the test pair)
MIN_POOL_PAIRS = 2


def is_pool_json(data: bytes) -> bool:
    """Whether a JSON file's bytes hold a list at the top level (the RE-ARC form; UTF-8 text)."""
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] == b"["


def pool_from_json(obj: Any, task_id: str, file: str | None = None) -> tuple[Task | None, list[TaskError]]:
    """A pool task from a parsed JSON list of pairs, and the problems found: bad pairs (located, skipped and
    counted); None when fewer than :data:`MIN_POOL_PAIRS` pairs are good."""
    if not isinstance(obj, list):
        raise TaskError(f"a pool must be a JSON list of pairs, got {_describe(obj)}", file=file, task=task_id)
    good: list[Pair] = []
    bad: list[TaskError] = []
    for i, p in enumerate(obj):
        try:
            good.append(_parse_pair(p, f"pair {i}", True))
        except TaskError as e:
            bad.append(e.located(file=file, task=task_id))
    return _finish(task_id, file, tuple(good), bad, len(obj))


def _finish(
    task_id: str, file: str | None, good: tuple[Pair, ...], bad: list[TaskError], total: int
) -> tuple[Task | None, list[TaskError]]:
    errors = [
        TaskError(e.message + "; pair skipped", file=e.file, task=e.task, pair=e.pair, field=e.field) for e in bad
    ]
    errors = errors[:MAX_BAD_REPORTED]
    if bad:
        more = f" ({len(bad) - MAX_BAD_REPORTED} not listed)" if len(bad) > MAX_BAD_REPORTED else ""
        errors.append(
            TaskError(
                f"{len(bad)} of {total} pairs are bad and skipped{more}; {len(good)} kept", file=file, task=task_id
            )
        )
    if total == 0:
        errors.append(TaskError("the pool is empty (a JSON list with no pairs); skipped", file=file, task=task_id))
        return None, errors
    if len(good) < MIN_POOL_PAIRS:
        errors.append(
            TaskError(
                f"a pool needs at least {MIN_POOL_PAIRS} good pairs (a train pair and a test pair), "
                f"it has {len(good)}; skipped",
                file=file,
                task=task_id,
            )
        )
        return None, errors
    return Task(task_id, good, (), source=file or "", pool=True), errors


def pool_from_bytes(data: bytes, task_id: str, file: str) -> tuple[Task | None, list[TaskError]]:
    """A pool task from a file's bytes: the vectorised reader for plain RE-ARC text, else ``json`` and the exact
    checks. Raises TaskError (located) for a file that is not JSON or a task id that cannot be used."""
    if why := task_id_problem(task_id):
        raise TaskError(f"{why}: rename the file", file=file)
    pairs = read_plain_pool(data)
    if pairs is not None:
        return _finish(task_id, file, pairs, [], len(pairs))
    return pool_from_json(_parse_json_bytes(data, file), task_id, file)


def pool_dataset(data: bytes, name: str, file: str) -> Dataset:
    """A pool file as a dataset of one task (none when the pool keeps fewer than two pairs) and its problems."""
    task, errors = pool_from_bytes(data, Path(name).stem, file)
    return Dataset(name=name, tasks={task.id: task} if task else {}, errors=errors, version="pool")


def refuse_empty_pool(ds: Dataset) -> Dataset:
    """A file loaded on its own: a pool that kept no task is refused (its last problem, and the first)."""
    if ds.version == "pool" and not ds.tasks and ds.errors:
        first, last = ds.errors[0], ds.errors[-1]
        more = "" if first is last else f" (first problem: {first.pair}, {first.field or 'pair'}: {first.message})"
        raise TaskError(last.message + more, file=last.file, task=last.task)
    return ds


# --------------------------------------------------------------------------- the vectorised reader

_ALLOWED = np.frombuffer(b"0123456789[]{},:IO", dtype=np.uint8)
_O, _C, _COMMA, _COLON, _LB, _RB, _I, _OUT = (ord(ch) for ch in "[],:{}IO")
_PAIR = rb"\{(?:IO|OI)\}"
_SKELETON = re.compile(rb"(?:" + _PAIR + rb")+")
_MAX_SIDE = 30


def _among(v: np.ndarray, *chars: int) -> np.ndarray:
    out = v == chars[0]
    for ch in chars[1:]:
        out |= v == ch
    return out


def read_plain_pool(data: bytes) -> tuple[Pair, ...] | None:
    """The pairs of a pool file written in the plain form (a list of objects with exactly the keys "input" and
    "output", grids of single-digit cells, any whitespace), every grid checked (rectangular, 1x1 to 30x30); None
    when the text is in any other form (then read it with ``json`` and the exact checks). Grids are uint8 views of
    one array per file.

    The text (whitespace dropped, the keys as ``I``/``O``) is checked character by character against its
    neighbours and its bracket depth: a cell is one digit in a row (depth 3) between ``[``/``,`` and ``,``/``]``;
    a row opens after a grid's ``[`` or a ``,`` and holds a cell; a grid opens after ``:`` with a row; the keys,
    colons, braces and commas at depth 1 sit where a list of ``{"input": grid, "output": grid}`` puts them, and
    each object holds both keys once."""
    s = data.replace(b'"input"', b"I").replace(b'"output"', b"O").translate(None, b" \t\r\n")
    c = np.frombuffer(s, dtype=np.uint8)
    n = c.size
    if n < 4 or c[0] != _O or c[1] != _LB or c[-1] != _C or c[-2] != _RB:
        return None
    hist = np.bincount(c, minlength=256)
    if int(hist[_ALLOWED].sum()) != n:
        return None
    if not _SKELETON.fullmatch(s.translate(None, b"0123456789[],:")):
        return None
    op, cl = c == _O, c == _C
    d = np.cumsum(op.view(np.int8) - cl.view(np.int8), dtype=np.int16)  # the bracket depth after each character
    if d[-1] != 0 or d[:-1].min() < 1 or d.max() > 3:
        return None
    prev, cur, nxt, dm = c[:-2], c[1:-1], c[2:], d[1:-1]  # the interior characters and their neighbours
    dig = (c - ord("0")) < 10
    pd, cd, nd = dig[:-2], dig[1:-1], dig[2:]
    comma = cur == _COMMA
    if (cd & ~((dm == 3) & _among(prev, _O, _COMMA) & _among(nxt, _COMMA, _C))).any():
        return None  # a cell that is not one digit in a row
    if (comma & (dm == 3) & ~(pd & nd)).any() or (comma & (dm == 2) & ~((prev == _C) & (nxt == _O))).any():
        return None
    # brackets, keys, colons, braces and depth-1 commas: few, checked by position
    opens = np.flatnonzero(op[1:-1]) + 1
    closes = np.flatnonzero(cl[1:-1]) + 1
    od, cdp = d[opens], d[closes] + 1  # the depth inside each bracket
    grids, rows = opens[od == 2], opens[od == 3]
    row_ends, grid_ends = closes[cdp == 3], closes[cdp == 2]
    if (
        not dig[rows + 1].all()
        or not ((c[grids - 1] == _COLON) & (c[grids + 1] == _O)).all()
        or not (dig[row_ends - 1] & _among(c[row_ends + 1], _COMMA, _C)).all()
        or not ((c[grid_ends - 1] == _C) & _among(c[grid_ends + 1], _COMMA, _RB)).all()
    ):
        return None
    marks = np.flatnonzero(_among(cur, _LB, _RB, _I, _OUT, _COLON) | (comma & (dm == 1))) + 1
    mc, mp, mn = c[marks], c[marks - 1], c[marks + 1]
    if (d[marks] != 1).any():
        return None
    rules = (
        (_LB, _among(mp, _O, _COMMA) & _among(mn, _I, _OUT)),
        (_I, _among(mp, _LB, _COMMA) & (mn == _COLON)),
        (_OUT, _among(mp, _LB, _COMMA) & (mn == _COLON)),
        (_COLON, _among(mp, _I, _OUT) & (mn == _O)),
        (_RB, (mp == _C) & _among(mn, _COMMA, _C)),
        (_COMMA, ((mp == _C) & _among(mn, _I, _OUT)) | ((mp == _RB) & (mn == _LB))),
    )
    for ch, ok in rules:
        if not ok[mc == ch].all():
            return None
    # sizes: rows per grid, cells per row ("d,d,...,d"); every row as long as its grid's first
    first = np.searchsorted(rows, grids)
    heights = np.diff(np.append(first, rows.size))
    row_len = (row_ends - rows) // 2
    widths = row_len[first]
    if not np.array_equal(row_len, np.repeat(widths, heights)):
        return None  # a ragged grid
    if heights.max() > _MAX_SIDE or widths.max() > _MAX_SIDE:
        return None
    cells = np.frombuffer(s.translate(None, b"[]{},:IO"), dtype=np.uint8) - ord("0")
    sizes = heights * widths
    if int(sizes.sum()) != cells.size:
        return None
    offsets = (np.cumsum(sizes) - sizes).tolist()
    views = [
        cells[o : o + h * w].reshape(h, w) for o, h, w in zip(offsets, heights.tolist(), widths.tolist(), strict=True)
    ]
    first_is_input = [k == _I for k in s.translate(None, b"0123456789[]{},:")[0::2]]
    return tuple(
        Pair(views[2 * k], views[2 * k + 1]) if fi else Pair(views[2 * k + 1], views[2 * k])
        for k, fi in enumerate(first_is_input)
    )
