"""Names that become file or folder names (run ids, prediction and stage names, task ids): confined to their root
by construction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def name_problem(name: Any, what: str = "name") -> str | None:
    """Why ``name`` cannot be the name of a file or folder inside a root (a run id, a prediction name, a task id),
    or None: it must be non-empty text, not ``.`` or ``..``, with no path separator and no control character, so
    that ``root / name`` is always a child of ``root``."""
    if not isinstance(name, str) or not name.strip():
        return f"a {what} must be non-empty text"
    if (
        name in (".", "..")
        or "/" in name
        or "\\" in name
        or os.sep in name
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        return f"{what} {name!r} cannot be a folder name (no '.', '..', separators or control characters)"
    return None


def task_id_problem(task_id: Any) -> str | None:
    """Why ``task_id`` cannot be a task id (ids become folder names: adapters/<id>/), or None."""
    return name_problem(task_id, "task id")


def parse_task_list(text: str) -> tuple[str, ...]:
    """Task ids from the command line: comma-separated, or ``@FILE`` with one id per line."""
    import argparse

    if text.startswith("@"):
        try:
            lines = Path(text[1:]).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise argparse.ArgumentTypeError(f"{text}: cannot read the task list ({e})") from None
        ids = tuple(ln.strip() for ln in lines if ln.strip())
    else:
        ids = tuple(t.strip() for t in text.split(",") if t.strip())
    if not ids:
        raise argparse.ArgumentTypeError("no task id given (leave --tasks out to use every task)")
    return ids
