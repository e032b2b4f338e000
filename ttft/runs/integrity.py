"""What a run's files must look like to be read: JSON objects that parse (:func:`read_json_checked`), status and
job fields of the types the registry reads (:func:`fields_problem`), checkpoints whose files are whole
(:func:`checkpoint_problem`). Each check says what is wrong in one line, or None; none of them raises."""

from __future__ import annotations

import json
import math
import os
import stat as stat_mod
import struct
import zipfile
from pathlib import Path
from typing import Any


def read_json_checked(path: Path) -> tuple[Any, str | None]:
    """(the JSON object in ``path``, None) or (None, what is wrong: unreadable, not UTF-8, not JSON, not an object,
    nested too deeply, ...). A missing file is (None, None)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, f"{path.name} is a folder, not a file"
    except OSError as e:
        return None, f"{path.name} cannot be read ({e.strerror or type(e).__name__})"
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text (binary or damaged)"
    except json.JSONDecodeError as e:
        return None, f"{path.name} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
    except RecursionError:
        return None, f"{path.name} is nested too deeply to read"
    except ValueError as e:  # an integer too long to convert
        return None, f"{path.name} cannot be read ({str(e).split(':')[0]})"
    if not isinstance(obj, dict):
        return None, f"{path.name} holds a JSON {type(obj).__name__}, not an object"
    return obj, None


def checkpoint_problem(cp: Path) -> str | None:
    """Why a Trainer checkpoint folder cannot be resumed from (a truncated or unreadable file), or None. Cheap: the
    safetensors headers and sizes, the torch files' zip directories and trainer_state.json are checked, no tensor
    is loaded."""
    cp = Path(cp)
    state, why = read_json_checked(cp / "trainer_state.json")
    if why or state is None:
        return why or "trainer_state.json is missing"
    if not isinstance(state.get("global_step"), int):
        return "trainer_state.json has no global_step"
    try:
        files = sorted(cp.iterdir())
    except OSError as e:
        return f"cannot list it ({e.strerror})"
    weights = [f for f in files if f.suffix in (".safetensors", ".bin") and "model" in f.name]
    if not weights:
        return "it holds no model or adapter weights (*.safetensors)"
    for f in files:
        if f.suffix == ".safetensors":
            why = _safetensors_problem(f)
        elif f.suffix in (".pt", ".pth", ".bin"):
            why = None if _is_zip(f) else f"{f.name} is truncated or damaged (not a whole torch file)"
        else:
            continue
        if why:
            return why
    return None


def _is_zip(f: Path) -> bool:
    try:
        return zipfile.is_zipfile(f)
    except OSError:
        return False


def _safetensors_problem(f: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensors' bytes: the file must be as
    long as the header says."""
    try:
        size = f.stat().st_size
        with open(f, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return f"{f.name} is truncated ({size} bytes)"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                return f"{f.name} is truncated ({size:,} bytes; its header alone needs {n + 8:,})"
            header = json.loads(fh.read(n))
    except (OSError, ValueError, RecursionError) as e:
        return f"{f.name} cannot be read ({type(e).__name__})"
    if not isinstance(header, dict):
        return f"{f.name} has a damaged header"
    end = 0
    for k, v in header.items():
        if k == "__metadata__":
            continue
        offs = v.get("data_offsets") if isinstance(v, dict) else None
        if not (isinstance(offs, list) and len(offs) == 2 and all(isinstance(o, int) for o in offs)):
            return f"{f.name} has a damaged header"
        end = max(end, offs[1])
    if size < 8 + n + end:
        return f"{f.name} is truncated ({size:,} of {8 + n + end:,} bytes)"
    return None


#: the fields of status.json the registry and the app read, and their JSON types (null is allowed for each)
_NUM = (int, float)
STATUS_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "pid": (int,),
    "pid_start": _NUM,
    "supervisor_pid": (int,),
    "supervisor_start": _NUM,
    "step": _NUM,
    "max_steps": _NUM,
    "queued_at": _NUM,
    "started": _NUM,
    "ended": _NUM,
    "updated": _NUM,
    "stop_requested": _NUM,
    "final_loss": _NUM,
    "val_loss": _NUM,
    "exit_code": (int,),
    "error": (str,),
    "traceback": (str,),
    "note": (str,),
    "exit_signal": (str,),
    "kind": (str,),
    "slot": (str,),
    "run_dir": (str,),
    "job": (str,),
    "task": (str,),
    "counts": (dict,),
    "done": _NUM,
    "total": _NUM,
}
#: the fields of job.json the queue and the registry read
JOB_FIELDS: dict[str, tuple[type, ...]] = {
    "argv": (list,),
    "kind": (str,),
    "slots": (int,),
    "stop_timeout_s": _NUM,
    "poll_s": _NUM,
    "cwd": (str,),
    "python": (str,),
    "root": (str,),
    "created": _NUM,
    "queued_at": _NUM,
    "launches": (int,),
    "config": (dict,),
    "module": (str,),
    "stage": (bool,),
    "run_dir": (str,),
    "owner": (dict,),
}
#: more files of a run whose damage makes a run that is not active ``corrupt``
OTHER_FILES = ("config.json", "manifest.json", "result.json")
TEXT_FILES = ("metrics.jsonl", "log.txt")


def fields_problem(d: dict, schema: dict[str, tuple[type, ...]], fname: str) -> str | None:
    """Why the values of a status.json / job.json object do not have the types the registry reads, or None."""
    for k, types in schema.items():
        v = d.get(k)
        if v is None:
            continue
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if ok and isinstance(v, float) and not math.isfinite(v):
            ok = False
        if ok and k in ("step", "max_steps", "pid", "supervisor_pid") and v < 0:
            ok = False
        if ok and isinstance(v, list):
            ok = all(isinstance(a, str) for a in v)
        if not ok:
            shown = repr(v) if len(repr(v)) <= 40 else repr(v)[:37] + "..."
            want = "a number" if types == _NUM else f"a JSON {'integer' if types == (int,) else types[0].__name__}"
            return f"{fname}: '{k}' is {shown}, not {want}"
    return None


_FILE_PROBLEMS: dict[tuple[str, int, int], str | None] = {}


def file_problem(path: str) -> str | None:
    """What is wrong with a run's JSON file (None when it is missing or fine); cached by (path, mtime, size)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _FILE_PROBLEMS:
        if len(_FILE_PROBLEMS) > 4096:
            _FILE_PROBLEMS.clear()
        _FILE_PROBLEMS[key] = read_json_checked(Path(path))[1]
    return _FILE_PROBLEMS[key]


def text_problem(path: str) -> str | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{os.path.basename(path)} cannot be read ({e.strerror})"
    return None if stat_mod.S_ISREG(st.st_mode) else f"{os.path.basename(path)} is not a regular file"


def read_checked(path: Path, schema: dict[str, tuple[type, ...]]) -> tuple[dict, str | None]:
    d, why = read_json_checked(path)
    if why is None and d is not None:
        why = fields_problem(d, schema, path.name)
    return (d if why is None and d is not None else {}), why
