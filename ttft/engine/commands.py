"""The commands a job runs (``train``, ``predict``, ``experiment seed-ablation``): their argument parsers generated
from the configs' declarations, the command line rebuilt from a config, and validation of a whole command before it
is queued (options, dataset, task ids, model source, whether any sample fits).

The CLI (:mod:`ttft.cli`) registers these same parsers; ``jobs launch`` and the app's Launch buttons go through
:func:`launch_command` / :func:`launch_config`, so a job that can only fail never waits in the queue.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ttft.engine.experiment_config import PRESETS, AblationConfig, SweepConfig
from ttft.engine.predict_config import PredictConfig
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError, Options, add_arguments, apply_args, argv_of
from ttft.runs.jobs import _enqueue, _new_run_path
from ttft.runs.process import device_kind
from ttft.runs.registry import Job, JobConfig, JobError, _is_run_dir, get_job
from ttft.runs.rundir import LAUNCH_CONFIG_FILE, RESUMABLE, write_json_atomic

#: the commands a job may run, with deep validation; other ttft commands are only parsed
LAUNCHABLE = ("train", "predict", "experiment")
#: options always written in a rebuilt command, so that it reads on its own
ALWAYS = {
    "train": ("mode", "dataset", "model.base_model", "steps", "lr"),
    "experiment": ("dataset", "base_model", "steps", "lr", "views"),
}


# --------------------------------------------------------------------------- config files


def read_config_file(path: str | Path, flag: str = "--config") -> dict:
    """A config JSON object from a file; ConfigError naming the file, line and column of what is wrong."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{flag} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{flag} {path}: cannot read it ({e})") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag} {path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except RecursionError:
        raise ConfigError(f"{flag} {path}: JSON nested too deeply") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{flag} {path}: must hold a JSON object, got {type(d).__name__}")
    return d


# --------------------------------------------------------------------------- parsers


def add_train_arguments(p: argparse.ArgumentParser, cls: type[TrainConfig] = TrainConfig) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="a config.json (a run's, or saved from the app); the flags given override it"
    )
    add_arguments(p, cls)
    g = p.add_argument_group("Run")
    g.add_argument("--run-dir", help="run directory (default: $TTFT_RUNS_DIR or ./runs, plus a new run id)")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        nargs="?",
        const=True,
        default=None,
        help="continue a stopped/failed run from its last checkpoint (its config is reused)",
    )
    g.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    g.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def add_predict_arguments(p: argparse.ArgumentParser, cls: type[PredictConfig] = PredictConfig) -> None:
    p.add_argument("--config", metavar="FILE", help="a prediction config.json; the flags given override it")
    add_arguments(p, cls)
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def add_experiment_arguments(p: argparse.ArgumentParser, cls: type[SweepConfig] = AblationConfig) -> None:
    add_arguments(p, cls)
    name = "sweep" if cls is SweepConfig else "seed-ablation"
    p.add_argument(
        "--out",
        help=f"experiment folder (default: $TTFT_RUNS_DIR/experiments/{name}-<time>); "
        "rerunning into it skips the rows already done",
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Rows")
    g.add_argument(
        "--grid",
        action="append",
        metavar="NAME=V1,V2",
        help="a swept option and its values (repeat for a product of several): a sweep option (lr, steps, lora_r, "
        "views, per_task, ...), ttft (false: no TTFT), or any training or prediction option as train.PATH / "
        "predict.PATH (a flag's name alone where it names one option: lora-dropout, decode); a list option's "
        "values are separated by |",
    )
    g.add_argument(
        "--rows-from",
        metavar="FILE",
        help='rows from a JSON file: [{"name": "...", "options": {"NAME": value, ...}}, ...] (with --grid: each '
        "row with every grid row)",
    )
    g.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="a predefined sweep's rows (seed-ablation: the seed experiment's rows; with --grid: each with every "
        "grid row)",
    )
    add_experiment_arguments(p, SweepConfig)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises ConfigError instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{self.prog.removeprefix('python -m ttft ')}: {message}")


def command_parser() -> argparse.ArgumentParser:
    """A parser of the launchable commands (the same flags as ``python -m ttft``) that raises ConfigError."""
    p = _Parser(prog="python -m ttft", exit_on_error=False, add_help=False)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_train_arguments(sub.add_parser("train", exit_on_error=False, add_help=False))
    add_predict_arguments(sub.add_parser("predict", exit_on_error=False, add_help=False))
    ex = sub.add_parser("experiment", exit_on_error=False, add_help=False)
    exs = ex.add_subparsers(dest="experiment", required=True, parser_class=_Parser)
    add_experiment_arguments(exs.add_parser("seed-ablation", exit_on_error=False, add_help=False))
    add_sweep_arguments(exs.add_parser("sweep", exit_on_error=False, add_help=False))
    return p


# --------------------------------------------------------------------------- a parsed command


@dataclass
class Command:
    """A validated command line: its config, the slot kind it needs and where it writes."""

    name: str  # train | predict | experiment
    argv: list[str]
    config: Options | None = None
    kind: str = "cpu"
    run_dir: str | None = None  # train --run-dir
    resume: str | None = None  # train --resume RUN_DIR
    out: str | None = None  # predict / experiment output folder

    @property
    def line(self) -> str:
        return command_line(self.argv)


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "ttft", *argv])


def config_from_args(cls: type[Options], args: argparse.Namespace, base: dict | None = None) -> Any:
    """The config of parsed flags over ``--config FILE`` (when the parser has one) or ``base``."""
    from ttft.core.profiles import profile_base

    if base is None and getattr(args, "config", None):
        base = read_config_file(args.config)
    kind = {TrainConfig: "train", PredictConfig: "predict"}.get(cls)
    if kind is not None:  # a --profile's values go under the explicit flags
        base = profile_base(kind, getattr(args, "profile", None), base)
    return apply_args(cls, args, base)


def _parse(argv: list[str]) -> argparse.Namespace:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return command_parser().parse_args(argv)
    except argparse.ArgumentError as e:
        raise ConfigError(f"{argv[0]}: {e}") from None
    except SystemExit:
        raise ConfigError(f"{argv[0]}: {err.getvalue().strip().splitlines()[-1:] or 'bad command'}") from None


def check_folder_option(flag: str, value: str | None) -> None:
    """Refuse a folder option (``--run-dir``, ``--out``) that names an existing file, or a path under one, in one
    line naming the option and the path, before anything is written."""
    if not value:
        return
    path = Path(value).expanduser().absolute()
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == path else f"is inside {p}, which is a file"
                raise ConfigError(f"{flag} {value}: {where}, not a folder")
            return


def parse_command(argv: Sequence[str], ready: bool = True) -> Command:
    """Parse and validate a launchable command line (without ``python -m ttft``). With ``ready``, also what would
    make the job fail at once: the dataset, the task ids, the model source, whether any sample fits. Raises
    ConfigError naming the option (or the command) and the value."""
    argv = [str(a) for a in argv]
    if not argv:
        raise ConfigError("nothing to launch: give a ttft command, e.g. train --config FILE")
    if argv[0] not in LAUNCHABLE:
        raise ConfigError(f"{argv[0]!r} is not a command a job runs (launchable: {', '.join(LAUNCHABLE)})")
    args = _parse(argv)
    check_folder_option("--run-dir", getattr(args, "run_dir", None))
    check_folder_option("--out", getattr(args, "out", None))
    if args.command == "train":
        base, resume = None, None
        if args.resume is not None:
            resume = args.resume if args.resume is not True else args.run_dir
            if not resume:
                raise ConfigError("train --resume needs the run directory (--resume RUN_DIR)")
            base = read_config_file(Path(resume) / "config.json", flag="--resume")
            base = {k: v for k, v in base.items() if k != "shards"}
        cfg = config_from_args(TrainConfig, args, base)
        cmd = Command("train", argv, cfg, device_kind(cfg.device), run_dir=args.run_dir, resume=resume)
        if ready and not resume:
            check_train_ready(cfg)
        return cmd
    if args.command == "predict":
        pcfg = config_from_args(PredictConfig, args)
        if ready:
            check_predict_ready(pcfg)
        return Command("predict", argv, pcfg, device_kind(pcfg.device), out=pcfg.out)
    if args.experiment == "sweep":
        scfg, rows = sweep_from_args(args)
        if ready:
            check_sweep_ready(scfg, rows)
        return Command("experiment", argv, scfg, device_kind(scfg.device), out=args.out)
    acfg = config_from_args(AblationConfig, args)
    if ready:
        check_experiment_ready(acfg)
    return Command("experiment", argv, acfg, device_kind(acfg.device), out=args.out)


#: what an experiment folder's config.json adds to its options
EXPERIMENT_KEYS = ("experiment", "task_ids", "sweep_rows")


def saved_experiment(out: str | Path | None) -> dict | None:
    """The options saved in an experiment folder's config.json (None when there is none): what a rerun into the
    folder starts from."""
    f = Path(out).expanduser() / "config.json" if out else None
    if f is None or not f.exists():
        return None
    return {k: v for k, v in read_config_file(f, flag="--out").items() if k not in EXPERIMENT_KEYS}


def sweep_from_args(args: argparse.Namespace):
    """(SweepConfig, rows) of ``experiment sweep`` flags: the flags over a rerun's saved options; the rows of
    ``--preset`` / ``--rows-from`` with every row of the ``--grid`` product, or, with none of them, the saved
    rows of the folder. Every value is checked by its option's declaration (ConfigError naming it)."""
    from ttft.engine.sweep_plan import Row, combine, parse_grid, read_rows_file, rows_of_json

    out = getattr(args, "out", None)
    base = saved_experiment(out)
    if base is None and hasattr(args, "tasks") and not hasattr(args, "max_task_tokens"):
        base = {"max_task_tokens": None}  # tasks named explicitly: no token cut unless asked for
    cfg = apply_args(SweepConfig, args, base)
    first: list[Row] = []
    if getattr(args, "preset", None):
        first = rows_of_json(PRESETS[args.preset], f"--preset {args.preset}")
    if getattr(args, "rows_from", None):
        if first:
            raise ConfigError("--rows-from and --preset: give one of them (each with --grid if you like)")
        first = read_rows_file(args.rows_from)
    rows = combine(first, parse_grid(list(getattr(args, "grid", None) or [])))
    if not rows and out and (Path(out).expanduser() / "config.json").exists():
        saved = read_config_file(Path(out).expanduser() / "config.json", flag="--out").get("sweep_rows")
        rows = rows_of_json(saved, f"--out {out}: sweep_rows") if saved else []
    if not rows:
        raise ConfigError("rows: give --grid NAME=V1,V2 (repeatable), --rows-from FILE or --preset NAME")
    return cfg, rows


def parse_train_argv(argv: Sequence[str]):
    """(TrainConfig, run_dir or None, resume run dir or None) of a ``train …`` command line; validated."""
    argv = list(argv)
    if argv[:1] != ["train"]:
        argv = ["train", *argv]
    try:
        cmd = parse_command(argv, ready=False)
    except ConfigError as e:
        raise JobError(f"bad train command: {e}") from None
    return cmd.config, cmd.run_dir, cmd.resume


# --------------------------------------------------------------------------- readiness (before any work)


def check_model_ready(base_model: str, init: str = "pretrained") -> None:
    """The cheap part of a model source: the embedded model is installed, a folder is a model folder."""
    from ttft.engine.models import DEFAULT_MODEL, ModelError, embedded_model_available

    if base_model == DEFAULT_MODEL:
        if init != "random" and not embedded_model_available():
            raise ModelError(
                "base_model: the embedded model is not installed (ttft/assets/model has no weights); "
                "choose a local model folder or a hub id, or init 'random' to train one from scratch"
            )
    elif base_model.startswith((".", "/", "~")) or Path(base_model).expanduser().is_dir():
        if not (Path(base_model).expanduser() / "config.json").exists():
            raise ModelError(f"base_model: {base_model!r} is not a model folder (no config.json)")


def check_launchable(tcfg: TrainConfig) -> None:
    """Validate a TrainConfig and the cheap parts of its model source (the form's check, on every change)."""
    tcfg.validate()
    check_model_ready(tcfg.model.base_model, tcfg.model.init)


def _tokenizer_if_cheap(tcfg: TrainConfig):
    """The run's tokenizer when loading it is cheap and offline (the embedded one, a local folder), else None."""
    from ttft.engine.models import DEFAULT_MODEL, load_tokenizer_for

    m = tcfg.model
    if m.base_model == DEFAULT_MODEL or Path(m.base_model).expanduser().is_dir():
        try:
            return load_tokenizer_for(m)
        except Exception:  # noqa: BLE001 — the job reports it with its full reason
            return None
    return None


def check_train_ready(tcfg: TrainConfig) -> None:
    """Everything a training job needs that can be checked in a second: config, model source, dataset and task ids,
    and that at least one training sample fits ``encoding.max_seq_len``."""
    from ttft.engine.mix import select_mix
    from ttft.engine.samples import source_tasks

    check_launchable(tcfg)
    parts = select_mix(tcfg)  # every dataset of a mix loads and selects tasks; no pool in ttft mode
    tok = _tokenizer_if_cheap(tcfg)
    if tok is None:
        return
    for part in parts[1:]:
        if not any(source_tasks(t, tcfg, tok) for t in part.tasks):
            raise ConfigError(
                f"encoding.max_seq_len: no training sample of dataset {part.name!r} fits in "
                f"{tcfg.encoding.max_seq_len} tokens; raise max_seq_len or leave it out of the mix, "
                f"got {tcfg.encoding.max_seq_len}"
            )
    tasks = parts[0].tasks
    for t in tasks:
        if source_tasks(t, tcfg, tok):
            return
    raise ConfigError(
        f"encoding.max_seq_len: no training sample of the {len(tasks)} selected task(s) fits in "
        f"{tcfg.encoding.max_seq_len} tokens (a sample needs at least two pairs"
        f"{' of train pairs' if tcfg.mode == 'ttft' else ''}); raise max_seq_len or choose smaller "
        "tasks, got " + str(tcfg.encoding.max_seq_len)
    )


def check_predict_ready(pcfg: PredictConfig) -> None:
    """A prediction's run or model, dataset and task ids, before it is queued."""
    from ttft.engine.sources import resolve_source, select

    pcfg.validate()
    source = resolve_source(pcfg)
    if pcfg.base_model:
        check_model_ready(pcfg.base_model)
    _, _, tasks = select(pcfg, source)
    if not tasks:
        raise ConfigError("tasks: no task selected")


def check_experiment_ready(acfg: SweepConfig) -> list[str]:
    """The experiment's options, model and task subset; its task ids."""
    from ttft.engine.experiment import select_ids

    acfg.validate()
    check_model_ready(acfg.base_model)
    ids = select_ids(acfg)
    if not ids:
        raise ConfigError("tasks: no task selected (test outputs must be known to score)")
    return ids


def check_sweep_ready(cfg: SweepConfig, rows: list, out: str | Path = "OUT") -> None:
    """A sweep before any work: its options, model and tasks, and every row's training and prediction configs
    (built and validated, :func:`ttft.engine.sweep_plan.plan`); the first row whose model cannot be used."""
    from ttft.engine.sweep_plan import plan

    ids = check_experiment_ready(cfg)
    for p in plan(cfg, rows, ids, Path(out)):
        if p.sweep.base_model != cfg.base_model:
            check_model_ready(p.sweep.base_model)


# --------------------------------------------------------------------------- commands of configs


def train_argv(tcfg: TrainConfig) -> list[str] | None:
    """``train …`` flags that give exactly this TrainConfig (options at their default are left out; mode, dataset,
    base model, steps and lr always shown), or None when an option has no flag (then use ``train --config FILE``).
    The flags are checked to parse back to the same config with the parser of the config's own class."""
    flags = argv_of(tcfg, always=ALWAYS["train"])
    if flags is None:
        return None
    p = _Parser(prog="python -m ttft train", exit_on_error=False, add_help=False)
    add_train_arguments(p, type(tcfg))
    try:
        back = apply_args(type(tcfg), p.parse_args(flags))
    except (ConfigError, argparse.ArgumentError):
        return None
    return ["train", *flags] if back.to_json() == tcfg.to_json() else None


def predict_argv(cfg: PredictConfig) -> list[str]:
    """The ``predict …`` command line (after ``python -m ttft``) that runs ``cfg``: every option that differs from
    the default, and ``--json``."""
    flags = argv_of(cfg)
    if flags is None:
        raise ConfigError("a prediction option cannot be written as a flag")
    return ["predict", *flags, "--json"]


def experiment_argv(cfg: AblationConfig, out: str | None = None) -> list[str]:
    flags = argv_of(cfg, always=ALWAYS["experiment"])
    if flags is None:
        raise ConfigError("an experiment option cannot be written as a flag")
    return ["experiment", "seed-ablation", *flags, *(["--out", out] if out else [])]


def sweep_argv(
    cfg: SweepConfig, grid: Sequence[str] = (), out: str | None = None, preset: str | None = None
) -> list[str]:
    """``experiment sweep …``: the sweep's options, ``--preset``, one ``--grid NAME=V1,V2`` per swept option."""
    flags = argv_of(cfg, always=ALWAYS["experiment"])
    if flags is None:
        raise ConfigError("an experiment option cannot be written as a flag")
    rows = [*(["--preset", preset] if preset else []), *(t for g in grid for t in ("--grid", g))]
    return ["experiment", "sweep", *flags, *rows, *(["--out", out] if out else [])]


# --------------------------------------------------------------------------- launching


def _job_cfg(cfg: JobConfig | None) -> JobConfig:
    return (cfg or JobConfig.from_env()).validate()


def launch_command(
    argv: Sequence[str], cfg: JobConfig | None = None, name: str | None = None, kind: str | None = None
) -> Job:
    """Validate a whole command and queue ``python -m ttft <argv>`` as a background job; returns the queued job.

    Launchable commands (train, predict, experiment) are validated deeply before anything is written; other ttft
    commands (``tasks``, ``--version`` ...) are only checked to be ttft commands. ``train`` gets ``--run-dir`` (a new
    folder in the runs folder) unless it names one; ``train --resume RUN_DIR`` queues that run again; predictions and
    experiments get their output folder fixed now."""
    jc = _job_cfg(cfg)
    argv = [str(a) for a in argv]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise JobError("nothing to launch: give a ttft command, e.g. train --config FILE")
    if kind is not None and kind not in ("cpu", "gpu"):
        raise JobError(f"kind: must be cpu or gpu, got {kind!r}")
    if argv[0] not in LAUNCHABLE:
        _check_other_command(argv)
        return _enqueue(_new_run_path(jc.root, name or argv[0].lstrip("-")), argv, kind or "cpu", jc, None)
    try:
        cmd = parse_command(argv)
    except ConfigError as e:
        raise JobError(f"bad {argv[0]} command: {e}") from None
    return _queue(cmd, jc, name, kind)


def _check_other_command(argv: list[str]) -> None:
    """A non-launchable command must at least be a ttft command line (its own parser checks the rest)."""
    known = ("tasks", "augment", "encode", "jobs", "merge-shards", "export-model", "--version", "--help", "-h")
    if argv[0] not in known:
        raise JobError(
            f"unknown ttft command {argv[0]!r} (jobs run: {', '.join(LAUNCHABLE)}; other commands: "
            f"{', '.join(k for k in known if not k.startswith('-'))})"
        )


def _queue(cmd: Command, jc: JobConfig, name: str | None, kind: str | None) -> Job:
    try:
        check_folder_option("--run-dir", cmd.run_dir)
        check_folder_option("--out", cmd.out)
    except ConfigError as e:
        raise JobError(str(e)) from None
    kind = kind or cmd.kind
    argv = list(cmd.argv)
    config = cmd.config.to_json() if cmd.config is not None else None
    if cmd.name == "train":
        if cmd.resume:
            job = get_job(cmd.resume, jc.root)
            if job.status not in RESUMABLE:
                raise JobError(f"{job.id} is {job.status}: only a stopped, failed or lost run can be resumed")
            return _enqueue(job.path, argv, kind, jc, config)
        if cmd.run_dir:
            path = Path(cmd.run_dir).expanduser().absolute()
            if _is_run_dir(path):
                raise JobError(f"{path} already holds a run: resume it, or choose another --run-dir")
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = _new_run_path(jc.root, name or getattr(cmd.config, "mode", "train"))
            argv = [*argv, "--run-dir", str(path)]
        return _enqueue(path, argv, kind, jc, config)
    path = _new_run_path(jc.root, name or cmd.name)
    return _enqueue(path, argv, kind, jc, config)


def launch_train(tcfg: TrainConfig, cfg: JobConfig | None = None, name: str | None = None) -> Job:
    """Queue a training run of a TrainConfig (the app's Launch button). The command is :func:`train_argv` when
    it states the config exactly, else ``train --config <run>/launch-config.json``."""
    jc = _job_cfg(cfg)
    check_train_ready(tcfg)
    path = _new_run_path(jc.root, name or tcfg.mode)
    argv = train_argv(tcfg)
    if argv is None:
        write_json_atomic(path / LAUNCH_CONFIG_FILE, tcfg.to_json())
        argv = ["train", "--config", str(path / LAUNCH_CONFIG_FILE)]
    return _enqueue(path, [*argv, "--run-dir", str(path)], device_kind(tcfg.device), jc, tcfg.to_json())


def launch_prediction(cfg: PredictConfig, jobs_cfg: JobConfig | None = None) -> dict:
    """Queue ``python -m ttft predict …`` for ``cfg`` as a background job (its own session; it survives the app)
    and return ``{"out": folder, "argv": [...], "job": job id}``. The output folder is fixed now (``cfg.out`` or
    the default under the run / the runs folder)."""
    from ttft.engine.predict import default_out_dir
    from ttft.engine.sources import resolve_source

    check_predict_ready(cfg)
    source = resolve_source(cfg)
    spec = cfg.dataset or source.dataset or ""
    out = Path(cfg.out).expanduser() if cfg.out else default_out_dir(cfg, spec)
    cfg = replace(cfg, out=str(out.absolute()))
    argv = predict_argv(cfg)
    job = _queue(
        Command("predict", argv, cfg, device_kind(cfg.device), out=cfg.out),
        _job_cfg(jobs_cfg),
        f"predict-{out.name}",
        None,
    )
    return {"out": str(out), "argv": argv, "job": job.id}


def launch_sweep(
    cfg: SweepConfig,
    grid: Sequence[str] = (),
    out: str | None = None,
    preset: str | None = None,
    jobs_cfg: JobConfig | None = None,
) -> Job:
    """Queue a sweep (every row validated first, through the command's own parser); its folder is fixed now."""
    from ttft.engine.experiment import experiments_root

    out = out or str(experiments_root() / time.strftime("sweep-%Y%m%d-%H%M%S"))
    cmd = parse_command(sweep_argv(cfg, grid, out, preset))
    return _queue(cmd, _job_cfg(jobs_cfg), "sweep", None)


def launch_experiment(acfg: AblationConfig, out: str | None = None, jobs_cfg: JobConfig | None = None) -> Job:
    """Queue the seed ablation for ``acfg`` (validated first); its folder is fixed now."""
    from ttft.engine.experiment import experiments_root

    check_experiment_ready(acfg)
    out = out or str(experiments_root() / time.strftime("seed-ablation-%Y%m%d-%H%M%S"))
    argv = experiment_argv(acfg, out)
    return _queue(
        Command("experiment", argv, acfg, device_kind(acfg.device), out=out), _job_cfg(jobs_cfg), "seed-ablation", None
    )
