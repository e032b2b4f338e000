"""``python -m ttft jobs …``: background jobs (list, launch, stop, resume, delete) over the runs folder.

    python -m ttft jobs list [--json]
    python -m ttft jobs launch [--cpu-slots N] [--gpu-slots N] -- train --config cfg.json --steps 500
    python -m ttft jobs stop RUN [--timeout S] [--no-wait]
    python -m ttft jobs resume RUN
    python -m ttft jobs delete RUN --yes

RUN is a run id (a folder name in the runs folder) or a path. ``wait-and-run RUN`` is the supervisor a launch
starts (detached); it is not meant to be typed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(sub) -> None:
    from ttft.options import add_arguments
    from ttft.runs.registry import JobConfig

    p = sub.add_parser(
        "jobs",
        help="background jobs: list, launch (queued: one GPU job at a time), stop, resume, "
        "delete; the app's Fine-tune page shows the same runs",
    )
    add_arguments(p, JobConfig)
    js = p.add_subparsers(dest="jobs_command", required=True, metavar="{list,launch,stop,resume,delete}")

    ls = js.add_parser("list", help="the runs in the runs folder with their status and queue position")
    ls.add_argument("--json", action="store_true", help="print one JSON array as the last line")
    ls.set_defaults(func=cmd_list)

    la = js.add_parser(
        "launch",
        help="queue `python -m ttft <args>` as a background job (its own process session)",
        description="Queue `python -m ttft <args>` as a background job: e.g. `jobs launch -- train "
        "--config cfg.json`. It starts when its turn comes and a slot is free, and goes on "
        "after this command, the app or the browser go away.",
    )
    add_arguments(la, JobConfig, exclude=("runs_dir",))
    la.add_argument("--kind", choices=["cpu", "gpu"], help="which slot the job takes (default: from its device)")
    la.add_argument("--name", help="run folder name suffix (default: the mode or command)")
    la.add_argument("--json", action="store_true", help="print the queued job as one JSON object")
    la.add_argument("args", nargs=argparse.REMAINDER, help="the ttft command and its options, after --")
    la.set_defaults(func=cmd_launch)

    st = js.add_parser(
        "stop",
        help="stop a job: SIGTERM (it saves a checkpoint and ends 'stopped'), SIGKILL after "
        "the timeout; a queued job is just marked stopped",
    )
    st.add_argument("run")
    st.add_argument("--timeout", type=float, help="seconds between SIGTERM and SIGKILL (default: the job's, 30)")
    st.add_argument("--no-wait", action="store_true", help="return at once (a detached watchdog escalates)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_stop)

    rs = js.add_parser(
        "resume",
        help="queue a stopped, failed or lost run again (train --resume: from its last "
        "checkpoint, with optimizer and scheduler state)",
    )
    rs.add_argument("run")
    rs.add_argument("--json", action="store_true")
    rs.set_defaults(func=cmd_resume)

    de = js.add_parser("delete", help="delete a run folder (refused while the job runs)")
    de.add_argument("run")
    de.add_argument("--yes", action="store_true", help="really delete (required)")
    de.set_defaults(func=cmd_delete)

    wr = js.add_parser("wait-and-run")  # the supervisor a launch starts; not listed in the help
    wr.add_argument("run_dir")
    wr.set_defaults(func=cmd_wait_and_run)

    wm = js.add_parser(
        "warm",
        help="a warm worker: import torch and transformers once, then fork the runs folder's jobs from itself "
        "(a small job starts without ~7 s of imports; the Try page starts one; it exits after 15 idle minutes)",
    )
    wm.add_argument("--root", default=None, help="the runs folder (default: $TTFT_RUNS_DIR or ./runs)")
    wm.add_argument("--idle", type=float, default=None, metavar="S", help="exit after S seconds without a job")
    wm.set_defaults(func=cmd_warm)


def _cfg(args):
    from ttft.cli.main import CliError
    from ttft.options import ConfigError, flat_options
    from ttft.runs.registry import JobConfig

    given = {o.name: getattr(args, o.dest) for o in flat_options(JobConfig) if hasattr(args, o.dest)}
    try:
        return JobConfig.from_env(**given)
    except ConfigError as e:
        raise CliError(str(e)) from None


def _describe(j) -> str:
    prog = f"{j.step}/{j.max_steps}" if j.max_steps else (str(j.step) if j.step else "")
    pos = f"#{j.position}" if j.position else ""
    return f"{j.id:<40} {j.status:<9} {pos:>4} {j.kind:<4} {prog:>11}  {j.note or j.raw.get('error') or ''}"


def cmd_list(args) -> int:
    from ttft.cli.main import _print_json
    from ttft.runs.registry import list_jobs

    cfg = _cfg(args)
    jobs = list_jobs(cfg.root)
    if args.json:
        _print_json([j.to_json() for j in jobs])
        return 0
    print(f"{len(jobs)} run(s) in {cfg.root}")
    if jobs:
        print(f"{'run':<40} {'status':<9} {'queue':>4} {'kind':<4} {'step':>11}")
        for j in jobs:
            print(_describe(j))
    return 0


def _wrap(fn):
    from ttft.cli.main import CliError
    from ttft.options import ConfigError

    try:
        return fn()
    except ConfigError as e:
        raise CliError(str(e)) from None
    except OSError as e:  # a full disk, a read-only or missing folder: one line, not a traceback
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        raise CliError(f"{e.strerror or e}{where}") from None


def cmd_launch(args) -> int:
    from ttft.cli.main import _print_json
    from ttft.engine.commands import launch_command

    cfg = _cfg(args)
    job = _wrap(lambda: launch_command(args.args, cfg, name=args.name, kind=args.kind))
    if args.json:
        _print_json(job.to_json())
    else:
        pos = f" (position {job.position} in the {job.kind} queue)" if job.position else ""
        print(
            f"{job.status}{pos}: {job.path}\n  {job.command()}\nwatch: python -m ttft jobs list, or the app's "
            "Fine-tune page",
            file=sys.stderr,
        )
    return 0


def cmd_stop(args) -> int:
    from ttft.cli.main import _print_json
    from ttft.runs.jobs import stop

    cfg = _cfg(args)
    t0 = time.monotonic()
    job = _wrap(lambda: stop(args.run, cfg, wait=not args.no_wait, timeout=args.timeout))
    if args.json:
        _print_json(job.to_json() | {"seconds": round(time.monotonic() - t0, 3)})
    else:
        print(f"{job.id}: {job.status}" + (f" ({job.note})" if job.note else ""), file=sys.stderr)
    return 0


def cmd_resume(args) -> int:
    from ttft.cli.main import _print_json
    from ttft.runs.jobs import resume

    job = _wrap(lambda: resume(args.run, _cfg(args)))
    if args.json:
        _print_json(job.to_json())
    else:
        print(f"{job.id}: {job.status}\n  {job.command()}", file=sys.stderr)
    return 0


def cmd_delete(args) -> int:
    from pathlib import Path

    from ttft.cli.main import CliError
    from ttft.runs.jobs import delete, delete_text
    from ttft.runs.registry import resolve

    if not args.yes:
        raise CliError(f"delete {args.run}: pass --yes to delete the run folder and everything in it")
    cfg = _cfg(args)
    found = _wrap(lambda: resolve(args.run, cfg.root))
    target = Path(found).resolve() if Path(found).is_symlink() else None
    path = _wrap(lambda: delete(found, cfg))
    print(delete_text(path, target), file=sys.stderr)
    return 0


def cmd_wait_and_run(args) -> int:
    from ttft.runs.jobs import wait_and_run

    return wait_and_run(args.run_dir)


def cmd_warm(args) -> int:
    """Import what the jobs import, then serve (ttft.runs.warm)."""
    import os

    env_before = dict(os.environ)
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import LlamaForCausalLM  # noqa: F401 - the embedded model's class and its modules

    import ttft.engine.predict  # noqa: F401
    import ttft.engine.train  # noqa: F401
    from ttft.cli.main import main
    from ttft.runs import warm
    from ttft.runs.registry import JobConfig

    root = Path(args.root) if args.root else JobConfig.from_env().root
    return warm.serve(root, main, env_before, **({"idle_s": args.idle} if args.idle is not None else {}))
