"""The seed experiment as a built-in: a TTFT ablation, end to end.

Rows (the seed experiment, arc24 iteration 4): ``baseline`` (no TTFT), ``n-1`` (leave-one-out tasks only),
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
from pathlib import Path
from typing import Any

from ttft.core.augment import AugmentOptions
from ttft.engine.experiment_config import ROW_OPTIONS, ROWS, AblationConfig, slug
from ttft.options import ConfigError
from ttft.runs.jobs import enqueue_stage, wait_for
from ttft.runs.lifecycle import RunLifecycle
from ttft.runs.process import device_kind, process_alive
from ttft.runs.registry import EXPERIMENTS_DIR, Job, JobConfig
from ttft.runs.rundir import ACTIVE, RunDir, read_json, runs_root, write_json_atomic


def select_ids(cfg: AblationConfig) -> list[str]:
    """The experiment's task ids: the selected tasks whose test outputs are known (to score), sorted by id, the
    first ``limit``. An empty selection raises ConfigError."""
    from ttft.core.selection import select_tasks

    _, tasks = select_tasks(cfg.dataset, cfg.tasks, cfg.max_task_tokens, known_outputs=True)
    ids = sorted(t.id for t in tasks)
    return ids[: cfg.limit] if cfg.limit else ids


def stage_kind(cfg: AblationConfig) -> str:
    """The slot kind of the experiment's train and predict stages: ``gpu`` when its device is (or, for ``auto``,
    finds) a GPU, else ``cpu``."""
    return device_kind(cfg.device)


def train_config_for(row: str, cfg: AblationConfig, ids: list[str]):
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.models import ModelConfig
    from ttft.engine.train_config import TrainConfig

    over = ROWS[row] or {}
    aug = AugmentOptions.from_json({**AugmentOptions(seed=cfg.seed).to_json(), **over.get("augment", {})})
    return TrainConfig(
        mode="ttft",
        dataset=cfg.dataset,
        tasks=tuple(ids),
        per_task=cfg.per_task,
        task_weighting="task",
        steps=cfg.steps,
        lr=cfg.lr,
        seed=cfg.seed,
        device=cfg.device,
        save_steps=max(cfg.steps, 1000),
        logging_steps=max(1, cfg.steps // 10),
        **{k: over[k] for k in ROW_OPTIONS if k in over},
        model=ModelConfig(base_model=cfg.base_model, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha),
        encoding=EncodingConfig(max_seq_len=cfg.max_seq_len),
        augment=aug,
    ).validate()


class _Stages:
    """The stage jobs of one experiment, run one at a time through the job queue."""

    def __init__(self, out: Path, life: RunLifecycle, jobs_cfg: JobConfig, progress: Callable[[str], None]):
        self.out, self.life, self.jobs_cfg, self.progress = out, life, jobs_cfg, progress
        self.stopped: Job | None = None  # a stage that ended 'stopped' (by us or by someone else)

    def run(self, row: str, stage: str, argv: list[str], run_dir: Path, kind: str, module: str = "ttft") -> Job | None:
        """Queue the stage, wait for it; the finished job, or None when it was stopped. Raises when it failed."""
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
        job = wait_for(job, self.jobs_cfg, should_stop=lambda: self.life.requested)
        self.life.log(f"[{row}] {stage}: job {job.id} {job.status}")
        if job.status == "finished":
            return job
        if job.status == "stopped":
            self.stopped = job
            return None
        why = job.raw.get("error") or job.note or job.status
        raise RuntimeError(f"[{row}] {stage} job {job.id} {job.status}: {why}; see {job.path}")


def _seconds(raw: dict) -> float:
    s, e = raw.get("started"), raw.get("ended")
    return max(0.0, float(e) - float(s)) if isinstance(s, (int, float)) and isinstance(e, (int, float)) else 0.0


def _train_stage(row: str, cfg: AblationConfig, ids: list[str], rdir: Path, stages: _Stages, kind: str) -> float | None:
    """The row's TTFT run (skipped when finished before, resumed when stopped before): its seconds, or None when
    it was stopped."""
    run = RunDir(rdir / "run")
    if run.status().get("status") == "finished":
        stages.progress(f"[{row}] TTFT done before ({run.path})")
        return _seconds(run.status())
    tcfg = train_config_for(row, cfg, ids)
    cfile = rdir / "train-config.json"
    write_json_atomic(cfile, tcfg.to_json())
    started = run.exists() or any(run.path.glob("shard-*/config.json"))
    if started and cfg.gpus > 1:
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
        f"[{row}] TTFT on {len(ids)} tasks × {cfg.steps} steps ({cfg.gpus} process(es))"
        + (" (resumed)" if started else "")
    )
    if cfg.gpus > 1:
        job = stages.run(
            row,
            "train",
            ["--standalone", "--nproc-per-node", str(cfg.gpus), "-m", "ttft", *args, "--json"],
            run.path,
            kind,
            module="torch.distributed.run",
        )
        if job is None or not cfg.per_task:  # a shared adapter trained data-parallel has no shards to merge
            return None if job is None else _seconds(job.raw)
        merged = stages.run(row, "merge", ["merge-shards", str(run.path), "--json"], run.path, "cpu")
        return None if merged is None else _seconds(job.raw) + _seconds(merged.raw)
    job = stages.run(row, "train", [*args, "--json"], run.path, kind)
    return None if job is None else _seconds(job.raw)


def _run_row(row: str, cfg: AblationConfig, ids: list[str], out: Path, stages: _Stages, kind: str) -> dict | None:
    """Run one row's stages; its results, or None when a stage was stopped."""
    rdir = out / "rows" / slug(row)
    rdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train_s = 0.0
    if ROWS[row] is None:
        pred_src = ["--base-model", cfg.base_model]
    else:
        got = _train_stage(row, cfg, ids, rdir, stages, kind)
        if got is None:
            return None
        train_s, pred_src = got, ["--run", str(rdir / "run")]
    stages.progress(f"[{row}] predicting {len(ids)} tasks × {cfg.views} views")
    pdir = rdir / "predictions"
    job = stages.run(
        row,
        "predict",
        [
            "predict",
            *pred_src,
            "--dataset",
            cfg.dataset,
            "--tasks",
            ",".join(ids),
            "--views",
            str(cfg.views),
            "--device",
            cfg.device,
            "--out",
            str(pdir),
            "--json",
        ],
        pdir,
        kind,
    )
    if job is None:
        return None
    pred = (read_json(pdir / "metrics.json") or {}).get("summary") or {}
    return {
        "experiment": row,
        "status": "finished",
        "val_loss": pred.get("val_loss"),
        "accuracy": pred.get("accuracy"),
        "pass_at_2": pred.get("pass_at_2"),
        "vote_1": pred.get("vote_1"),
        "correct_pixels": pred.get("correct_pixels"),
        "unanswered": pred.get("unanswered"),
        "train_seconds": train_s,
        "predict_seconds": _seconds(job.raw),
        "wall_seconds": time.time() - t0,
        "ttft_seconds_per_task_per_100_steps": (
            (train_s / len(ids) * 100 / cfg.steps) if train_s and cfg.per_task else None
        ),
        "n_tasks": pred.get("n_tasks"),
        "predictions": str(pdir),
        "run_dir": str(rdir / "run") if ROWS[row] is not None else None,
    }


def run_ablation(
    cfg: AblationConfig, out: Path, progress: Callable[[str], None] = print, jobs_cfg: JobConfig | None = None
) -> dict:
    """Run every row (skipping rows already done in ``out``), each stage as a queued job; collect and save the
    table. Returns ``{"config", "rows", "status"}`` (``stopped`` after SIGTERM or a stopped stage)."""
    cfg.validate()
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    exp = RunDir(out)
    st = exp.status()
    if (
        st.get("status") in ACTIVE
        and st.get("pid") != os.getpid()
        and process_alive(st.get("pid"), st.get("pid_start"))
    ):
        raise ConfigError(f"out: {out} is being run by process {st['pid']}: stop it first")
    ids = select_ids(cfg)
    if not exp.config_file.exists():
        write_json_atomic(exp.config_file, {"experiment": "seed-ablation", **cfg.to_json(), "task_ids": ids})
    jobs_cfg = jobs_cfg or JobConfig.from_env()
    kind = stage_kind(cfg)
    results = (read_json(out / "results.json") or {}).get("rows", {})
    done = lambda: sum(1 for r in cfg.rows if (results.get(r) or {}).get("status") == "finished")  # noqa: E731
    life = RunLifecycle(exp, stop_message="stopping its running stage")
    with life.start(
        rows_done=done(), n_rows=len(cfg.rows), n_tasks=len(ids), step=done(), max_steps=len(cfg.rows), stage=None
    ):
        stages = _Stages(out, life, jobs_cfg, progress)
        for row in cfg.rows:
            if life.requested or stages.stopped:
                break
            if (results.get(row) or {}).get("status") == "finished":
                continue
            rec = _run_row(row, cfg, ids, out, stages, kind)
            if rec is None:
                break
            results[row] = rec
            write_json_atomic(out / "results.json", {"config": cfg.to_json(), "rows": results})
            (out / "results.md").write_text(results_markdown(cfg, results))
            life.update(rows_done=done(), step=done())
            progress(f"[{row}] val loss {rec['val_loss']}, accuracy {rec['accuracy']}")
        why = {} if life.requested or not stages.stopped else {"note": f"its stage {stages.stopped.id} was stopped"}
        status = life.finish("stopped" if stages.stopped else None, stage=None, **why)
    progress(f"{status}: {done()} of {len(cfg.rows)} rows; {out}")
    return {"config": cfg.to_json(), "rows": results, "status": status}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f}%" if pct else (f"{v:.4f}" if isinstance(v, float) else str(v))


def results_markdown(cfg: AblationConfig, rows: dict) -> str:
    lines = [
        "| experiment | val loss | val accuracy | pass@2 | TTFT time (s) | total time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name in cfg.rows:
        r = rows.get(name)
        if not r:
            continue
        lines.append(
            f"| {name} | {_fmt(r['val_loss'])} | {_fmt(r['accuracy'], True)} | {_fmt(r['pass_at_2'], True)} "
            f"| {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


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


def _row_order(results: dict) -> list[str]:
    order = list((results.get("config") or {}).get("rows") or ROWS)
    return order + [n for n in (results.get("rows") or {}) if n not in order]


def per_task_losses(results: dict, exp_dir: Path | None = None):
    """Test-output val loss of every task (index) under every finished row (columns), read from each row's
    ``predictions/metrics.json``; the recorded path first, else ``<exp_dir>/rows/<row>/predictions``."""
    import pandas as pd

    cols = {}
    for name in _row_order(results):
        r = (results.get("rows") or {}).get(name)
        if not r:
            continue
        cands = [Path(r["predictions"])] if r.get("predictions") else []
        if exp_dir is not None:
            cands.append(Path(exp_dir) / "rows" / slug(name) / "predictions")
        m = next((read_json(c / "metrics.json") for c in cands if (c / "metrics.json").exists()), None)
        if m:
            cols[name] = {tid: v.get("val_loss") for tid, v in (m.get("per_task") or {}).items()}
    return pd.DataFrame(cols, dtype=float)


def vs_baseline(losses) -> dict[str, dict]:
    """Per row: on how many tasks (with a loss in both) the val loss is below the baseline's, and the mean relative
    change of the per-task loss (-0.3: 30% lower on average), as the outside reference states its result."""
    if "baseline" not in losses.columns:
        return {}
    out = {}
    for name in losses.columns:
        if name == "baseline":
            continue
        both = losses[["baseline", name]].dropna()
        both = both[both["baseline"] > 0]
        if both.empty:
            continue
        rel = (both[name] - both["baseline"]) / both["baseline"]
        out[name] = {
            "improved": int((both[name] < both["baseline"]).sum()),
            "n": int(len(both)),
            "mean_change": float(rel.mean()),
            "median_change": float(rel.median()),
        }
    return out


def results_frame(results: dict, exp_dir: Path | None = None):
    """The ablation table as a DataFrame in the seed experiment's form (rows in the configured order), with the
    per-task comparison against the baseline where the rows' predictions can be read."""
    import pandas as pd

    rows = results.get("rows") or {}
    cmp = vs_baseline(per_task_losses(results, exp_dir)) if rows else {}
    recs = []
    for name in _row_order(results):
        r = rows.get(name)
        if not r:
            continue
        c = cmp.get(name)
        recs.append(
            {
                "experiment": name,
                "val loss": r.get("val_loss"),
                "val accuracy": r.get("accuracy"),
                "pass@2": r.get("pass_at_2"),
                "vote@1": r.get("vote_1"),
                "pixels": r.get("correct_pixels"),
                "tasks better than baseline": f"{c['improved']}/{c['n']}" if c else None,
                "mean loss change per task": c["mean_change"] if c else None,
                "TTFT s": r.get("train_seconds"),
                "total s": r.get("wall_seconds"),
                "s/task/100 steps": r.get("ttft_seconds_per_task_per_100_steps"),
            }
        )
    return pd.DataFrame(recs)


def ablation_figure(results: dict, exp_dir: Path | None = None):
    """Val loss (bars) and accuracy / pass@2 (markers, second axis) per row."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    df = results_frame(results, exp_dir)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if len(df):
        fig.add_trace(go.Bar(x=df["experiment"], y=df["val loss"], name="val loss", marker_color="#0074D9"))
        for col, colour in (("val accuracy", "#FF4136"), ("pass@2", "#2ECC40")):
            fig.add_trace(
                go.Scatter(
                    x=df["experiment"], y=df[col], name=col, mode="markers+lines", marker={"size": 10, "color": colour}
                ),
                secondary_y=True,
            )
    fig.update_yaxes(title_text="val loss (test outputs)", secondary_y=False)
    fig.update_yaxes(title_text="share of test outputs", tickformat=".1%", secondary_y=True, rangemode="tozero")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"})
    return fig
