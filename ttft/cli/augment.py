"""``python -m ttft augment DATASET TASK_ID ...``: print one augmented view of a task and its spec.

With ``--json`` the last line of stdout is ``{"task": <augmented task in ARC JSON>, "spec": <spec>}``. An unknown
task, transform, colour map or step exits with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse

from ttft.cli.main import CliError, _load, _print_json
from ttft.core.augment import (
    COLOR_MODES,
    DIHEDRAL,
    AugmentOptions,
    AugmentSkipped,
    AugmentSpec,
    apply_task,
    random_spec,
)
from ttft.core.compose import STEP_KINDS
from ttft.core.data import BUNDLED, Task
from ttft.core.gridtext import grid_to_text


def _options(args: argparse.Namespace) -> AugmentOptions:
    opts = AugmentOptions(
        transforms=tuple(args.transform) if args.transform else DIHEDRAL,
        colors=args.colors,
        p_bg=args.p_bg,
        shuffle=args.shuffle,
        compose=tuple(args.compose or ()),
        seed=args.seed,
    )
    try:
        return opts.validate()
    except ValueError as e:
        raise CliError(str(e)) from None


def _summary(task: Task, view: Task, spec: AugmentSpec) -> None:
    print(f"task {task.id}: {spec.describe()}" + (f" (seed {spec.seed})" if spec.seed is not None else ""))
    for kind, orig, new in (("train", task.train, view.train), ("test", task.test, view.test)):
        for i, (p, q) in enumerate(zip(orig, new)):
            sizes = [f"input {p.input.shape[0]}x{p.input.shape[1]} -> {q.input.shape[0]}x{q.input.shape[1]}"]
            if p.output is not None and q.output is not None:
                sizes.append(
                    f"output {p.output.shape[0]}x{p.output.shape[1]} -> {q.output.shape[0]}x{q.output.shape[1]}"
                )
            print(f"{kind} pair {i}: " + ", ".join(sizes))
            print(grid_to_text(q.input), end="")
            if q.output is not None:
                print("->")
                print(grid_to_text(q.output), end="")
            print()


def cmd_augment(args: argparse.Namespace) -> int:
    ds = _load(args.dataset)
    if args.task_id not in ds.tasks:
        raise CliError(f"task {args.task_id!r} is not in dataset {ds.name!r} ({len(ds)} tasks)")
    task = ds.tasks[args.task_id]
    opts = _options(args)
    try:
        spec = random_spec(opts.seed, opts, task)
        view = apply_task(task, spec)
    except AugmentSkipped as e:
        raise CliError(f"view skipped: {e}") from None
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.json:
        _print_json({"task": view.to_json(), "spec": spec.to_json()})
    else:
        _summary(task, view, spec)
    return 0


def register(subparsers) -> None:
    """Add the ``augment`` command to ``python -m ttft``."""
    a = subparsers.add_parser("augment", help="print one augmented view of a task and its spec")
    a.add_argument(
        "dataset",
        help=f"a bundled dataset ({', '.join(BUNDLED)}), a task JSON file, a folder of task "
        "files, or a Kaggle *_challenges.json",
    )
    a.add_argument("task_id", help="id of the task to augment")
    a.add_argument(
        "--transform",
        action="append",
        metavar="NAME",
        help=f"dihedral transform ({', '.join(DIHEDRAL)}); repeat to draw among several; default: any",
    )
    a.add_argument(
        "--colors",
        default="keep-bg",
        metavar="MODE",
        help=f"{' | '.join(COLOR_MODES)} | an explicit map like 0213456789 or 1:2,2:1 (default keep-bg)",
    )
    a.add_argument(
        "--p-bg",
        type=float,
        default=0.0,
        dest="p_bg",
        help="with keep-bg: probability of also moving colour 0 (default 0)",
    )
    a.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reorder the train pairs at random (default on)",
    )
    a.add_argument(
        "--compose",
        action="append",
        metavar="STEP",
        help=f"composition step, repeatable, applied in order: a kind ({', '.join(STEP_KINDS)}) for random "
        "parameters or e.g. upscale:2x2:input, pad:1:5:output, mirror:h:both, tile:2x2",
    )
    a.add_argument("--seed", type=int, default=0, help="seed of the random choices (default 0)")
    a.add_argument(
        "--json", action="store_true", help='print {"task": ..., "spec": ...} as one JSON object on the last line'
    )
    a.set_defaults(func=cmd_augment)
