"""Command line: ``python -m ttft <command> ...``.

Each command lives in a ``cmd_<name>`` function registered in :func:`build_parser`.
Commands that take ``--json`` print exactly one JSON document as their last line
of stdout; human-readable text goes before it or to stderr. A dataset or input
that cannot be used at all exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ttft import __version__
from ttft.core.data import BUNDLED, DatasetError, TaskError, load_dataset

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """An error to report as one line on stderr with exit status 2."""


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _load(spec: str):
    try:
        ds = load_dataset(spec)
    except (DatasetError, TaskError) as e:
        raise CliError(str(e)) from None
    for err in ds.errors:
        print(f"skipped: {err}", file=sys.stderr)
    if not ds.tasks:
        raise CliError(f"dataset {spec!r}: no valid tasks ({len(ds.errors)} skipped)")
    return ds


def cmd_tasks(args) -> int:
    ds = _load(args.dataset)
    stats = [t.stats() for t in ds]
    if args.json:
        _print_json([s.to_json() for s in stats])
        return 0
    print(f"{ds.name}: {len(ds)} tasks ({ds.version})" + (f", {len(ds.errors)} skipped" if ds.errors else ""))
    print(f"{'id':<24} {'train':>5} {'test':>4} {'max HxW':>8} {'tokens':>7} {'test out':>8}")
    for s in stats:
        print(
            f"{s.id:<24} {s.n_train:>5} {s.n_test:>4} {f'{s.max_height}x{s.max_width}':>8} {s.tokens:>7} "
            f"{'known' if s.test_outputs_known else 'hidden':>8}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ttft", description="ttft: ARC test-time fine-tuning workbench")
    p.add_argument("--version", action="version", version=f"ttft {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tasks", help="list a dataset's tasks with their statistics")
    t.add_argument(
        "dataset",
        help=f"a bundled dataset ({', '.join(BUNDLED)}), a task JSON file, a folder of task "
        "files, or a Kaggle *_challenges.json",
    )
    t.add_argument("--json", action="store_true", help="print one JSON array (one object per task) as the last line")
    t.set_defaults(func=cmd_tasks)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


#: functions ``register(subparsers)`` that add more commands (kept in their own modules)
_EXTRA_COMMANDS: list = []


def _register_extras() -> None:
    # Imported lazily so `python -m ttft tasks` stays fast and light.
    import importlib

    for mod in (
        "ttft.cli.augment",
        "ttft.cli.encode",
        "ttft.cli.train",
        "ttft.cli.experiment",
        "ttft.cli.jobs",
        "ttft.cli.predict",
    ):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:
                continue
            raise
        if m.register not in _EXTRA_COMMANDS:
            _EXTRA_COMMANDS.append(m.register)


def main(argv: Sequence[str] | None = None) -> int:
    _register_extras()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # a full disk, a folder that cannot be written: one line (a run's log.txt has the rest)
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
