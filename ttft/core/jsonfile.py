"""JSON files read without losing what is good in them: a file that cannot be read, or a syntax error, is one
message (with the line and column); a value nested too deeply to parse or an integer too long to convert stays in
place as an :class:`Unreadable` value, so that the loaders reject only the task (pair, field) that holds it and load
the rest of the file; a folder's entries that are not files (a broken link, a folder) are named."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


class JsonError(ValueError):
    """A JSON file that cannot be read at all (the message says why, without the file's name)."""


class Unreadable:
    """A JSON value that could be parsed but not read as Python (nested too deeply, an integer too long): kept in
    place so that validation reports it where it is (task, pair, field) and the rest of the file still loads."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return self.what


#: a JSON integer longer than this is kept as an unreadable value (Python refuses to convert ints over 4,300 digits)
MAX_INT_DIGITS = 4000


def _parse_int(text: str) -> Any:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_INT_DIGITS else Unreadable(f"an integer with {digits} digits")


def read_file_bytes(path: Path, max_bytes: int) -> bytes:
    """A file's bytes; JsonError when it is larger than ``max_bytes`` or cannot be read (permissions, a folder)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise JsonError(f"file is {size / 1e6:.1f} MB, larger than the {max_bytes / 1024 / 1024:.0f} MB limit")
        return path.read_bytes()
    except OSError as e:
        raise JsonError(f"cannot read it ({e.strerror or type(e).__name__})") from None


def read_json_file(path: Path, max_bytes: int) -> Any:
    """A JSON file's content (:func:`parse_json_bytes`); JsonError when it is larger than ``max_bytes``, cannot be
    read (permissions, a folder) or is not JSON."""
    return parse_json_bytes(read_file_bytes(path, max_bytes))


def json_files_in(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The ``*.json`` files of a folder (sorted), and (entry, why it is skipped) for each ``*.json`` entry that is
    not a readable file: a broken symbolic link, a folder. OSError when the folder cannot be listed."""
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for name in sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json")):
        f = folder / name
        if f.is_symlink() and not f.exists():
            skipped.append((f, f"broken symbolic link (its target {os.path.realpath(f)} does not exist); skipped"))
        elif f.is_dir():
            skipped.append((f, "a folder, not a task file (the folder is not read recursively); skipped"))
        elif not f.is_file():
            skipped.append((f, "not a regular file; skipped"))
        else:
            files.append(f)
    return files, skipped


def parse_json_bytes(data: bytes) -> Any:
    """Parse a JSON file's bytes (UTF-8, or the UTF-16/32 JSON allows). Raises JsonError for text that is not
    JSON; a value nested too deeply or an integer too long to convert becomes an :class:`Unreadable` in place."""
    try:
        text = data.decode(json.detect_encoding(data))
    except UnicodeDecodeError as e:
        raise JsonError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise JsonError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except RecursionError:
        pass
    except ValueError:  # an integer too long to convert: parse again keeping it as an unreadable value
        try:
            return json.loads(text, parse_int=_parse_int)
        except RecursionError:
            pass
        except ValueError as e:
            raise JsonError(f"cannot read the JSON ({e})") from None
    try:
        return _parse_members(text)
    except (ValueError, IndexError, RecursionError):
        raise JsonError(
            "JSON nested too deeply to read (arrays or objects inside each other thousands of times)"
        ) from None


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_SCALAR = re.compile(r"[^,}\]\s]*")
_WS = re.compile(r"\s*")


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def _value_end(text: str, pos: int) -> int:
    """Where the JSON value starting at ``pos`` ends (brackets matched without recursion; strings skipped)."""
    if text[pos] == '"':
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError("unterminated string")
        return m.end()
    if text[pos] not in "[{":
        m = _SCALAR.match(text, pos)
        return m.end() if m else pos
    depth = 0
    for m in _TOKEN.finditer(text, pos):
        tok = m.group()
        if tok[0] == '"':
            continue
        depth += 1 if tok in "[{" else -1
        if depth == 0:
            return m.end()
    raise ValueError("unbalanced brackets")


def _parse_value(chunk: str) -> Any:
    try:
        return json.loads(chunk, parse_int=_parse_int)
    except RecursionError:
        return Unreadable("JSON nested too deeply to read")


def _parse_members(text: str) -> dict:
    """A top-level JSON object parsed member by member, so that one member nested too deeply to parse does not
    hide the others (it becomes an unreadable value)."""
    pos = _skip_ws(text, 0)
    if text[pos] != "{":
        raise ValueError("not an object")
    dec = json.JSONDecoder()
    out: dict[str, Any] = {}
    pos = _skip_ws(text, pos + 1)
    if text[pos] == "}":
        return out
    while True:
        key, pos = dec.raw_decode(text, pos)
        pos = _skip_ws(text, pos)
        if text[pos] != ":":
            raise ValueError("expected ':'")
        start = _skip_ws(text, pos + 1)
        end = _value_end(text, start)
        out[key] = _parse_value(text[start:end])
        pos = _skip_ws(text, end)
        if text[pos] == "}":
            return out
        if text[pos] != ",":
            raise ValueError("expected ','")
        pos = _skip_ws(text, pos + 1)
