"""Experiments, end to end: a sweep (rows that differ in any training or prediction option, the same task subset and
seeds), and the seed experiment's TTFT ablation, a predefined sweep.

A sweep's rows are built and validated first (:mod:`ttft.engine.sweep_plan`); each row is a TTFT run (unless the
row has ``ttft`` off) and a prediction (unless the sweep has ``predict`` off). The seed ablation's rows
(the seed experiment, arc24 iteration 4): ``baseline`` (no TTFT), ``n-1`` (leave-one-out tasks only),
``n-1 + geometric`` (+ the 8 dihedral transforms), ``n-1 + geometric + colour`` (+ colour permutations keeping 0),
and the variants ``preserve original colours`` (half the samples keep the original colours) and ``n-2``
(leave-two-out tasks). Every TTFT row is a per-task LoRA TTFT run with the same seed, steps and task subset; every
row is then predicted with the same views. The table is collected into ``<out>/results.json`` (+ ``results.md``)
which the app reads.

The experiment is an orchestrator: each stage (a row's ``train``, ``merge-shards`` after a ``torchrun`` TTFT stage
with ``gpus > 1``, and ``predict``) is queued as a job of its own (:func:`ttft.runs.jobs.enqueue_stage`, a folder
``<runs>/<experiment>--<row>--<stage>/``; ``gpu`` when the device is a GPU) in the same queue and slots as every
other job, and the experiment waits for it. The experiment itself runs under :class:`ttft.runs.lifecycle.RunLifecycle`
(status, pid and start time in ``<out>/status.json``): SIGTERM stops its running stage and ends it ``stopped``; a
rerun into the same folder skips the rows already done (and resumes a row's stopped TTFT run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ttft.engine.experiment_config import PRESETS, AblationConfig, SweepConfig, slug
from ttft.engine.sweep_plan import Row, RowPlan, plan
from ttft.options import ConfigError, argv_of
from ttft.runs.experiments import (  # noqa: F401 - the table's functions, where the experiments are
    per_task_losses,
    results_frame,
    results_markdown,
    vs_baseline,
)
from ttft.runs.jobs import enqueue_stage, wait_for
from ttft.runs.lifecycle import RunLifecycle
from ttft.runs.process import device_kind, process_alive
from ttft.runs.registry import EXPERIMENTS_DIR, Job, JobConfig
from ttft.runs.rundir import ACTIVE, RunDir, read_json, runs_root, write_json_atomic


def select_ids(cfg: SweepConfig) -> list[str]:
    """The experiment's task ids: the selected tasks whose test outputs are known (to score), sorted by id, the
    first ``limit``. An empty selection raises ConfigError."""
    from ttft.core.selection import select_tasks

    _, tasks = select_tasks(cfg.dataset, cfg.tasks, cfg.max_task_tokens, known_outputs=True)
    ids = sorted(t.id for t in tasks)
    return ids[: cfg.limit] if cfg.limit else ids


def stage_kind(cfg: SweepConfig) -> str:
    """The slot kind of the experiment's train and predict stages: ``gpu`` when its device is (or, for ``auto``,
    finds) a GPU, else ``cpu``."""
    return device_kind(cfg.device)


def train_config_for(row: str, cfg: AblationConfig, ids: list[str]):
    """The TTFT run of one of the seed ablation's rows (None for the baseline): its predefined sweep row's."""
    from ttft.engine.sweep_plan import train_config

    rec = next(r for r in PRESETS["seed-ablation"] if r["name"] == row)
    if rec["options"].get("ttft") is False:
        return None
    over = {k.removeprefix("train."): v for k, v in rec["options"].items()}
    return train_config(cfg.shared(), ids, over)


#: runs a stage's command (argv after ``python -m <module>``, the module, the folder it writes) and returns its
#: ended job; the default queues it (:func:`ttft.runs.jobs.enqueue_stage`) and waits; tests run stages in-process
Execute = Callable[[list[str], str, Path], Job]


class _Stages:
    """The stage jobs of one experiment, run one at a time through the job queue."""

    def __init__(
        self,
        out: Path,
        life: RunLifecycle,
        jobs_cfg: JobConfig,
        progress: Callable[[str], None],
        execute: Execute | None = None,
    ):
        self.out, self.life, self.jobs_cfg, self.progress = out, life, jobs_cfg, progress
        self.execute = execute
        self.stopped: Job | None = None  # a stage that ended 'stopped' (by us or by someone else)

    def run(self, row: str, stage: str, argv: list[str], run_dir: Path, kind: str, module: str = "ttft") -> Job | None:
        """Queue the stage, wait for it; the finished job, or None when it was stopped. Raises when it failed."""
        job = (
            self.execute(argv, module, run_dir)
            if self.execute is not None
            else self._queued(row, stage, argv, run_dir, kind, module)
        )
        self.life.log(f"[{row}] {stage}: job {job.id} {job.status}")
        if job.status == "finished":
            return job
        if job.status == "stopped":
            self.stopped = job
            return None
        why = job.raw.get("error") or job.note or job.status
        raise RuntimeError(f"[{row}] {stage} job {job.id} {job.status}: {why}; see {job.path}")

    def _queued(self, row: str, stage: str, argv: list[str], run_dir: Path, kind: str, module: str) -> Job:
        job = enqueue_stage(
            argv,
            f"{self.out.name}--{slug(row)}--{stage}",
            kind,
            self.jobs_cfg,
            run_dir=run_dir,
            owner=self.out,
            module=module,
        )
        where = f"queued, position {job.position}" if job.status == "queued" and job.position else job.status
        self.progress(f"[{row}] {stage}: job {job.id} ({kind}, {where})")
        self.life.log(f"[{row}] {stage}: job {job.id} ({kind}): {job.command()}")
        self.life.update(stage=job.id)
        return wait_for(job, self.jobs_cfg, should_stop=lambda: self.life.requested)


def _seconds(raw: dict) -> float:
    s, e = raw.get("started"), raw.get("ended")
    return max(0.0, float(e) - float(s)) if isinstance(s, (int, float)) and isinstance(e, (int, float)) else 0.0


def _train_stage(p: RowPlan, ids: list[str], rdir: Path, stages: _Stages, kind: str) -> float | None:
    """The row's TTFT run (skipped when finished before, resumed when stopped before): its seconds, or None when
    it was stopped."""
    row, tcfg, gpus = p.name, p.train, p.sweep.gpus
    assert tcfg is not None
    run = RunDir(rdir / "run")
    if run.status().get("status") == "finished":
        stages.progress(f"[{row}] TTFT done before ({run.path})")
        return _seconds(run.status())
    cfile = rdir / "train-config.json"
    write_json_atomic(cfile, tcfg.to_json())
    started = run.exists() or any(run.path.glob("shard-*/config.json"))
    if started and gpus > 1:
        write_json_atomic(run.config_file, tcfg.to_json())  # what the shards resume from (merge-shards rewrites it)
    elif started:
        from ttft.engine.train_config import TrainConfig

        if TrainConfig.from_json(run.config()).to_json() != tcfg.to_json():
            raise ConfigError(
                f"rows: {run.path} holds a TTFT run with other options than row {row!r} now has; "
                "delete it (or choose another --out) to run the row again"
            )
    args = (
        ["train", "--resume", str(run.path)]
        if started
        else ["train", "--config", str(cfile), "--run-dir", str(run.path)]
    )
    stages.progress(
        f"[{row}] TTFT on {len(ids)} tasks × {tcfg.steps} steps ({gpus} process(es))"
        + (" (resumed)" if started else "")
    )
    if gpus > 1:
        job = stages.run(
            row,
            "train",
            ["--standalone", "--nproc-per-node", str(gpus), "-m", "ttft", *args, "--json"],
            run.path,
            kind,
            module="torch.distributed.run",
        )
        if job is None or not tcfg.per_task:  # a shared adapter trained data-parallel has no shards to merge
            return None if job is None else _seconds(job.raw)
        merged = stages.run(row, "merge", ["merge-shards", str(run.path), "--json"], run.path, "cpu")
        return None if merged is None else _seconds(job.raw) + _seconds(merged.raw)
    job = stages.run(row, "train", [*args, "--json"], run.path, kind)
    return None if job is None else _seconds(job.raw)


def _run_row(p: RowPlan, ids: list[str], out: Path, stages: _Stages, kind: str) -> dict | None:
    """Run one row's stages; its results, or None when a stage was stopped."""
    row = p.name
    rdir = out / "rows" / p.folder
    rdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_s = 0.0
    if p.train is not None:
        got = _train_stage(p, ids, rdir, stages, kind)
        if got is None:
            return None
        train_s = got
    pred: dict = {}
    predict_s = 0.0
    pdir = None
    if p.predict is not None:
        pcfg = replace(p.predict, out=str(rdir / "predictions"))
        pdir = Path(pcfg.out or "")
        stages.progress(f"[{row}] predicting {len(ids)} tasks × {pcfg.views} views")
        flags = argv_of(pcfg, always=("dataset", "tasks", "views", "device"))
        if flags is None:
            raise ConfigError(f"row {row!r}: a prediction option cannot be written as a flag")
        job = stages.run(row, "predict", ["predict", *flags, "--json"], pdir, kind)
        if job is None:
            return None
        pred = (read_json(pdir / "metrics.json") or {}).get("summary") or {}
        predict_s = _seconds(job.raw)
    else:  # the TTFT run's own val loss (per task, then over tasks)
        res = read_json(rdir / "run" / "result.json") or {}
        pred = {"val_loss": res.get("val_loss"), "n_tasks": len(res.get("per_task") or {}) or len(ids)}
    steps = p.train.steps if p.train is not None else 0
    per_task = p.train is not None and p.train.per_task
    return {
        "experiment": row,
        "status": "finished",
        "options": p.options,
        "val_loss": pred.get("val_loss"),
        "accuracy": pred.get("accuracy"),
        "pass_at_2": pred.get("pass_at_2"),
        "vote_1": pred.get("vote_1"),
        "correct_pixels": pred.get("correct_pixels"),
        "unanswered": pred.get("unanswered"),
        "train_seconds": train_s,
        "predict_seconds": predict_s,
        "wall_seconds": time.time() - t0,
        "ttft_seconds_per_task_per_100_steps": ((train_s / len(ids) * 100 / steps) if train_s and per_task else None),
        "n_tasks": pred.get("n_tasks"),
        "predictions": str(pdir) if pdir is not None else None,
        "run_dir": str(rdir / "run") if p.train is not None else None,
    }


def _check_not_running(exp: RunDir) -> None:
    st = exp.status()
    if (
        st.get("status") in ACTIVE
        and st.get("pid") != os.getpid()
        and process_alive(st.get("pid"), st.get("pid_start"))
    ):
        raise ConfigError(f"out: {exp.path} is being run by process {st['pid']}: stop it first")


def run_sweep(
    cfg: SweepConfig,
    rows: list[Row],
    out: Path,
    progress: Callable[[str], None] = print,
    jobs_cfg: JobConfig | None = None,
    name: str = "sweep",
    execute: Execute | None = None,
) -> dict:
    """Run every row of a sweep (skipping rows already done in ``out``), each stage as a queued job, with the same
    task subset and seeds; collect and save the table (``results.json``, ``results.md``). Every row's configs are
    built and validated before any work. ``name``: the experiment's command (``sweep``, ``seed-ablation``), what
    a rerun (``experiment <name> --out OUT``) runs. Returns ``{"config", "rows", "status"}`` (``stopped`` after
    SIGTERM or a stopped stage)."""
    cfg.validate()
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    exp = RunDir(out)
    _check_not_running(exp)
    ids = select_ids(cfg)
    plans = plan(cfg, rows, ids, out)
    names = [p.name for p in plans]
    record = {"experiment": name, **cfg.to_json(), "task_ids": ids}
    if name != "seed-ablation":
        record["sweep_rows"] = [r.to_json() for r in rows]
    if not exp.config_file.exists():
        write_json_atomic(exp.config_file, record)
    conf = {**cfg.to_json(), "rows": names}
    jobs_cfg = jobs_cfg or JobConfig.from_env()
    kind = stage_kind(cfg)
    results = (read_json(out / "results.json") or {}).get("rows", {})
    done = lambda: sum(1 for r in names if (results.get(r) or {}).get("status") == "finished")  # noqa: E731
    life = RunLifecycle(exp, stop_message="stopping its running stage")

    def save() -> None:
        opts = {p.name: p.options for p in plans}
        write_json_atomic(out / "results.json", {"config": conf, "row_options": opts, "rows": results})
        (out / "results.md").write_text(results_markdown(names, results, out))

    with life.start(
        rows_done=done(), n_rows=len(names), n_tasks=len(ids), step=done(), max_steps=len(names), stage=None
    ):
        stages = _Stages(out, life, jobs_cfg, progress, execute)
        for p in plans:
            if life.requested or stages.stopped:
                break
            if (results.get(p.name) or {}).get("status") == "finished":
                continue
            rec = _run_row(p, ids, out, stages, kind)
            if rec is None:
                break
            results[p.name] = rec
            save()
            life.update(rows_done=done(), step=done())
            progress(f"[{p.name}] val loss {rec['val_loss']}, accuracy {rec['accuracy']}")
        why = {} if life.requested or not stages.stopped else {"note": f"its stage {stages.stopped.id} was stopped"}
        status = life.finish("stopped" if stages.stopped else None, stage=None, **why)
    progress(f"{status}: {done()} of {len(names)} rows; {out}")
    return {"config": conf, "rows": results, "status": status}


def ablation_rows(cfg: AblationConfig) -> list[Row]:
    """The seed ablation's rows (``cfg.rows``, in that order) as sweep rows: the predefined sweep's."""
    by_name = {r["name"]: r for r in PRESETS["seed-ablation"]}
    return [Row(n, dict(by_name[n]["options"])) for n in cfg.rows]


def run_ablation(
    cfg: AblationConfig, out: Path, progress: Callable[[str], None] = print, jobs_cfg: JobConfig | None = None
) -> dict:
    """The seed ablation: the predefined sweep ``seed-ablation`` with the rows ``cfg.rows`` (:func:`run_sweep`)."""
    cfg.validate()
    return run_sweep(cfg, ablation_rows(cfg), out, progress, jobs_cfg, name="seed-ablation")


def experiments_root() -> Path:
    """Where experiments are written by default: ``<runs>/experiments`` (the job registry lists them too)."""
    return runs_root() / EXPERIMENTS_DIR


def list_experiments(root: Path | None = None) -> list[Path]:
    root = root or experiments_root()
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if (p / "config.json").exists()), key=lambda p: p.stat().st_mtime, reverse=True
    )
