"""Grids as text in every format (minimal, shape+rows, separated, arc24, numpy) and back, never raising."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ttft.core.data import MAX_SIDE, Grid
from ttft.core.tokenizer import EOS, INPUT_MARKER, OUTPUT_MARKER


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def grid_to_text(grid: Grid, fmt: str = "minimal") -> str:
    """The text of one grid in format ``fmt``; every row ends with a newline."""
    h, w = grid.shape
    if fmt in ("minimal", "shape+rows", "arc24"):
        buf = np.empty((h, w + 1), dtype=np.uint8)
        buf[:, :w] = grid
        buf[:, :w] += 48
        buf[:, w] = 10
        text = buf.tobytes().decode("ascii")
        if fmt == "minimal":
            return text
        rows = text.split("\n")
        numbered = "".join(f"{i} {rows[i - 1]}\n" for i in range(1, h + 1))
        if fmt == "arc24":
            return f"```grid shape: {h}x{w}\n{numbered}```\n"
        return f"shape: {h}x{w}\n{numbered}"
    if fmt in ("separated", "numpy"):
        buf = np.full((h, 2 * w), 32, dtype=np.uint8)
        buf[:, 0::2] = grid
        buf[:, 0::2] += 48
        buf[:, -1] = 10
        text = buf.tobytes().decode("ascii")
        if fmt == "separated":
            return text
        lines = text.split("\n")[:-1]
        return "".join(
            ("[[" if i == 0 else " [") + line + ("]]" if i == h - 1 else "]") + "\n" for i, line in enumerate(lines)
        )
    _check_format(fmt)
    raise AssertionError("unreachable")


def cell_offsets(shape: tuple[int, int], fmt: str = "minimal") -> np.ndarray:
    """Character offset of every cell in ``grid_to_text`` of a grid of this shape (an ``h x w`` int array)."""
    _check_format(fmt)
    h, w = shape
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    if fmt == "minimal":
        return rows * (w + 1) + cols
    if fmt == "separated":
        return rows * (2 * w) + 2 * cols
    if fmt == "numpy":
        return rows * (2 * w + 3) + 2 + 2 * cols
    header = len(f"```grid shape: {h}x{w}\n" if fmt == "arc24" else f"shape: {h}x{w}\n")
    prefix = np.array([len(f"{i} ") for i in range(1, h + 1)])
    starts = header + np.concatenate([[0], np.cumsum(prefix + w + 1)[:-1]]) + prefix
    return starts[:, None] + cols


@dataclass(frozen=True)
class ParseResult:
    """A grid read from text, or ``None`` and the reason it could not be read."""

    grid: Grid | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.grid is not None


_ROW_RE = {"minimal": re.compile(r"[0-9]+"), "separated": re.compile(r"[0-9]( [0-9])*")}


_HEADER_RE = re.compile(r"shape: (\d+)x(\d+)")


_NUMBERED_RE = re.compile(r"(\d+) ([0-9]+)")


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n] + "..."


def text_to_grid(
    text: str, fmt: str = "minimal", stop: Sequence[str] | None = None, lenient: bool = False
) -> ParseResult:
    """Read a grid written in format ``fmt``. The text is cut at the first ``stop`` string (default: the markers
    and common end-of-sequence texts; a code fence ends the text except in format ``arc24``, where a line starting
    with a fence ends the grid) and stripped of surrounding whitespace. Never raises for bad text.

    ``lenient`` reads a grid as arc24's parser does: the numbers of the shape header and of the rows are not checked
    (the rows are kept as they are); the grid must still be rectangular digits. Strict (the default) refuses a grid
    whose header or row numbers disagree with its rows."""
    if fmt not in FORMATS:
        return ParseResult(None, f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not isinstance(text, str):
        return ParseResult(None, f"expected text, got {type(text).__name__}")
    for s in stop if stop is not None else _DEFAULT_STOPS + (INPUT_MARKER, OUTPUT_MARKER):
        if s and s in text and not (fmt == "arc24" and s.startswith("```")):
            text = text[: text.index(s)]
    lines = text.strip().splitlines()
    if not lines:
        return ParseResult(None, "no grid: the text is empty")
    got = _rows_of(lines, fmt, lenient)
    if isinstance(got, ParseResult):
        return got
    rows, expect = got
    if not rows:
        return ParseResult(None, "no grid rows after the header")
    width = len(rows[0])
    for i, row in enumerate(rows, 1):
        if len(row) != width:
            return ParseResult(None, f"ragged grid: row {i} has {len(row)} cells, row 1 has {width}")
    if expect is not None and expect != (len(rows), width) and not lenient:
        return ParseResult(None, f"header says {expect[0]}x{expect[1]} but the rows make {len(rows)}x{width}")
    if len(rows) > MAX_SIDE or width > MAX_SIDE:
        return ParseResult(None, f"grid is {len(rows)}x{width}, larger than {MAX_SIDE}x{MAX_SIDE}")
    if width == 0:
        return ParseResult(None, "no grid: the rows are empty")
    grid = (np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8) - 48).reshape(len(rows), width)
    return ParseResult(grid)


_FENCE_HEADER_RE = re.compile(r"```grid shape: (\d+)x(\d+)")


_LENIENT_ROW_RE = re.compile(r"[^ ]* ([0-9]+)")


_NUMPY_ROW_RE = re.compile(r"(\[\[| \[)([0-9]( [0-9])*)(\]\]|\])")


def _rows_of(lines: list[str], fmt: str, lenient: bool) -> ParseResult | tuple[list[str], tuple[int, int] | None]:
    """The digit rows of a grid's lines (and the shape its header states), or why they cannot be read."""
    if fmt in ("shape+rows", "arc24"):
        head = lines[0].strip()
        if fmt == "arc24":
            m = _FENCE_HEADER_RE.fullmatch(head)
            if not m and not (lenient and head.startswith("```grid shape:")):
                return ParseResult(None, f"first line {_clip(lines[0])!r} is not a header like '```grid shape: 3x4'")
            body = []
            for line in lines[1:]:
                if line.startswith("```"):
                    break
                body.append(line)
        else:
            m = _HEADER_RE.fullmatch(head)
            if not m and not (lenient and head.startswith("shape:")):
                return ParseResult(None, f"first line {_clip(lines[0])!r} is not a header like 'shape: 3x4'")
            body = lines[1:]
        rows = []
        for i, line in enumerate(body, 1):
            n = _NUMBERED_RE.fullmatch(line.rstrip())
            if lenient and not n:
                n = _LENIENT_ROW_RE.fullmatch(line.rstrip())
                if n:
                    rows.append(n[1])
                    continue
            if not n:
                return ParseResult(None, f"row {i} {_clip(line)!r} is not a row number, a space and digits")
            if int(n[1]) != i and not lenient:
                return ParseResult(None, f"row {i} is numbered {n[1]}")
            rows.append(n[2])
        return rows, (int(m[1]), int(m[2])) if m else None
    if fmt == "numpy":
        rows = []
        for i, line in enumerate(lines, 1):
            row = line.rstrip() if i > 1 else line.strip()
            if lenient:
                row = row.replace("[", " ").replace("]", " ").strip()
                ok = bool(_ROW_RE["separated"].fullmatch(row))
            else:
                n = _NUMPY_ROW_RE.fullmatch(row)
                first, last = i == 1, i == len(lines)
                ok = n is not None and (n[1] == "[[") == first and (n[4] == "]]") == last
                row = n[2] if n is not None else row
            if not ok:
                return ParseResult(
                    None,
                    f"row {i} {_clip(line)!r} is not a numpy row like "
                    f"{'[[0 1' if i == 1 else ' [0 1'}{']]' if i == len(lines) else ']'}",
                )
            rows.append(row.replace(" ", ""))
        return rows, None
    rows = [line.rstrip() for line in lines]
    for i, row in enumerate(rows, 1):
        if not _ROW_RE[fmt].fullmatch(row):
            what = "digits 0-9" if fmt == "minimal" else "digits 0-9 separated by single spaces"
            return ParseResult(None, f"row {i} {_clip(row)!r} is not {what}")
    if fmt == "separated":
        rows = [r.replace(" ", "") for r in rows]
    return rows, None


FORMATS: tuple[str, ...] = ("minimal", "shape+rows", "separated", "arc24", "numpy")


#: end-of-sequence texts cut off before parsing, besides the markers
_DEFAULT_STOPS: tuple[str, ...] = (EOS, "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end|>", "```")


#: where arc24's generation prompt stops: inside the reply, after the opening of the grid's fence
ARC24_FENCE = "```grid"
