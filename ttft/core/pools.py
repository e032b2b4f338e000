"""Pools of pairs: the RE-ARC format (michaelhodel/re-arc writes one file per task id holding a JSON list of
``{"input": grid, "output": grid}`` objects, e.g. 1,000 generated examples of one ARC training task).

A pool loads as a :class:`ttft.core.data.Task` with ``pool=True``: its good pairs are the task's train pairs and it
has no test pair, so everything that reads tasks keeps working (statistics, the Tasks page, augmentations); finetune
mode draws a few pairs of it per sample (:mod:`ttft.engine.samples`). Each pair is checked like a task's pair; a bad
one is reported (file, task, pair, field) and skipped, the others are kept.

A RE-ARC file is plain: single-digit cells, the two keys, brackets, commas. Such text is read without ``json``
(sizes off the brackets, the text checked against the one those sizes give, cells as one uint8 array: about half
of ``json.load``'s time alone, and every pair checked; ``bench/bench_pools.py``); anything else
(other keys, numbers that are not one digit, a bad grid, other encodings) goes through ``json`` and the exact
per-pair checks, which locate every problem.
"""

from __future__ import annotations

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

_O, _C, _COLON, _COMMA, _QUOTE, _N = (ord(ch) for ch in '[]:,"n')
_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)  # every digit as 0: the text's shape
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0") : ord("9") + 1] = True
_MAX_SIDE = 30
#: what comes before a grid's text: its key (input 0, output 1) x (first grid, first of an object, second of one)
_KEY_TEXT = [b'{"input":', b'},{"input":', b',"input":', b'{"output":', b'},{"output":', b',"output":']
_shape_texts: list[bytes] = [b""] * (32 * 32)  # the text of an all-zero grid, at 32 h + w (b"": not written yet)


def _shape_text(code: int) -> bytes:
    h, w = divmod(code, 32)
    row = b"[" + b"0," * (w - 1) + b"0]"
    return b"[" + (row + b",") * (h - 1) + row + b"]"


def read_plain_pool(data: bytes) -> tuple[Pair, ...] | None:
    """The pairs of a pool file written in the plain form (a list of objects with exactly the keys "input" and
    "output", grids of single-digit cells, any whitespace between the tokens), every grid checked (rectangular, 1x1
    to 30x30); None when the text is in any other form (then read it with ``json`` and the exact checks). Grids are
    uint8 views of one array per file.

    The grid sizes are read off the brackets (a row opens after ``[`` or ``,``, a grid after ``:``; a row of n cells
    spans 2n characters) and each grid's key off the letter six characters before it (``n`` of ``"input":[``),
    then the text these sizes and keys would have, with every cell a ``0``, is written out and compared with the
    file's text (whitespace dropped, digits as ``0``): equal only when the file is exactly that list of grids, so
    nothing malformed is read (the quotes of each key are checked to hold no whitespace). Everything per pair runs
    in numpy or in C-level ``map`` calls."""
    s = data.translate(None, b" \t\r\n")
    c = np.frombuffer(s, dtype=np.uint8)
    if c.size < 4 or c[0] != _O:
        return None
    opens = np.flatnonzero(c == _O)[1:]
    closes = np.flatnonzero(c == _C)
    before = c[opens - 1]
    grids = opens[before == _COLON]
    rows = opens[(before == _O) | (before == _COMMA)]
    row_ends = closes[_DIGIT[c[closes - 1]]]
    n = grids.size
    if n == 0 or n % 2 or rows.size != row_ends.size or rows.size == 0 or grids[0] < 10:
        return None
    first = np.searchsorted(rows, grids)
    if first[-1] >= rows.size or first[0] != 0:
        return None
    heights = np.diff(np.append(first, rows.size))
    if heights.min() < 1:
        return None
    row_len = (row_ends - rows) // 2
    widths = row_len[first]
    same = row_len[1:] == row_len[:-1]
    same[first[1:] - 1] = True  # a grid's first row starts a new width
    if not same.all():
        return None  # ragged
    if widths.min() < 1 or heights.max() > _MAX_SIDE or widths.max() > _MAX_SIDE:
        return None
    is_output = c[grids - 6] != _N
    if not (is_output[0::2] != is_output[1::2]).all():
        return None  # each object holds both keys
    quotes = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == _QUOTE)
    if quotes.size != 2 * n or not (quotes[1::2] - quotes[0::2] == 6 + is_output).all():
        return None  # a key with whitespace inside its quotes, or quotes elsewhere
    pos = np.tile(np.array([1, 2], dtype=np.int64), n // 2)
    pos[0] = 0
    keys = list(map(_KEY_TEXT.__getitem__, (3 * is_output + pos).tolist()))
    codes = (32 * heights + widths).tolist()
    for code in set(codes):
        if not _shape_texts[code]:
            _shape_texts[code] = _shape_text(code)
    parts: list[bytes] = [b""] * (2 * n)
    parts[0::2] = keys
    parts[1::2] = [_shape_texts[code] for code in codes]
    if b"[" + b"".join(parts) + b"}]" != s.translate(_ZEROS):
        return None
    cells = np.frombuffer(s.translate(None, b'[]{},:"inputo'), dtype=np.uint8) - ord("0")
    ends = np.cumsum(heights * widths)
    flat = map(cells.__getitem__, map(slice, (ends - heights * widths).tolist(), ends.tolist()))
    views = list(map(np.ndarray.reshape, flat, zip(heights.tolist(), widths.tolist(), strict=True)))
    inputs = (np.arange(0, n, 2) + is_output[0::2]).tolist()
    return tuple(map(Pair, map(views.__getitem__, inputs), map(views.__getitem__, [i ^ 1 for i in inputs])))
