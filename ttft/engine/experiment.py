"""The seed experiment as a built-in: a TTFT ablation, end to end.

Rows (the seed experiment, arc24 iteration 4): ``baseline`` (no TTFT), ``n-1`` (leave-one-out tasks only),
``n-1 + geometric`` (+ the 8 dihedral transforms), ``n-1 + geometric + colour`` (+ colour permutations keeping 0),
and the variants ``preserve original colours`` (half the samples keep the original colours) and ``n-2``
(leave-two-out tasks). Every TTFT row is a per-task LoRA TTFT run with the same seed, steps and task subset; every
row is then predicted with the same views. Each stage runs as its own ``python -m ttft …`` process (``torchrun``
with ``gpus > 1``: one process per device or CPU core, each training its share of the tasks), and the table is
collected into ``<out>/results.json`` (+ ``results.md``) which the app reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ttft.core.augment import AugmentOptions
from ttft.engine.experiment_config import ROWS, AblationConfig, slug
from ttft.runs.rundir import RunDir, read_json, runs_root, write_json_atomic


def select_ids(cfg: AblationConfig) -> list[str]:
    from ttft.core.selection import select_tasks

    _, tasks = select_tasks(cfg.dataset, cfg.tasks, cfg.max_task_tokens)
    tasks = [t for t in tasks if t.test_outputs_known]
    ids = sorted(t.id for t in tasks)
    return ids[: cfg.limit] if cfg.limit else ids


def train_config_for(row: str, cfg: AblationConfig, ids: list[str]):
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.models import ModelConfig
    from ttft.engine.train_config import TrainConfig

    over = ROWS[row] or {}
    aug = AugmentOptions.from_json({**AugmentOptions(seed=cfg.seed).to_json(), **over.get("augment", {})})
    return TrainConfig(
        mode="ttft", dataset=cfg.dataset, tasks=tuple(ids), per_task=True, steps=cfg.steps, lr=cfg.lr,
        seed=cfg.seed, device=cfg.device, save_steps=max(cfg.steps, 1000), logging_steps=max(1, cfg.steps // 10),
        leave_out=over.get("leave_out", 1), keep_original_colors=over.get("keep_original_colors", 0.0),
        model=ModelConfig(base_model=cfg.base_model, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha),
        encoding=EncodingConfig(max_seq_len=cfg.max_seq_len), augment=aug,
    ).validate()


def _run(cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run one stage as its own process; its output goes to ``log``; returns the JSON of its last stdout line."""
    with open(log, "a") as lf:
        lf.write(f"$ {' '.join(cmd)}\n")
        lf.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=lf, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} … exited {p.returncode}; see {log}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_ablation(cfg: AblationConfig, out: Path, progress: Callable[[str], None] = print) -> dict:
    """Run every row (skipping rows already done in ``out``), collect and save the table."""
    cfg.validate()
    out.mkdir(parents=True, exist_ok=True)
    exp = RunDir(out)
    ids = select_ids(cfg)
    if not exp.config_file.exists():
        write_json_atomic(exp.config_file, {"experiment": "seed-ablation", **cfg.to_json(), "task_ids": ids})
    exp.update_status(status="running", pid=os.getpid(), rows_done=0, n_rows=len(cfg.rows), n_tasks=len(ids),
                      started=time.time())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    py = sys.executable
    results = (read_json(out / "results.json") or {}).get("rows", {})
    log = out / "log.txt"
    try:
        for k, row in enumerate(cfg.rows):
            if row in results and results[row].get("status") == "finished":
                continue
            rdir = out / "rows" / slug(row)
            rdir.mkdir(parents=True, exist_ok=True)
            t0 = time.time()
            train_s = 0.0
            if ROWS[row] is None:
                pred_src = ["--base-model", cfg.base_model]
            else:
                tcfg = train_config_for(row, cfg, ids)
                cfile = rdir / "train-config.json"
                write_json_atomic(cfile, tcfg.to_json())
                run_dir = rdir / "run"
                progress(f"[{row}] TTFT on {len(ids)} tasks × {cfg.steps} steps ({cfg.gpus} process(es))")
                if cfg.gpus > 1:
                    _run([py, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(cfg.gpus),
                          "-m", "ttft", "train", "--config", str(cfile), "--run-dir", str(run_dir), "--json"],
                         log, env)
                    _run([py, "-m", "ttft", "merge-shards", str(run_dir), "--json"], log, env)
                else:
                    _run([py, "-m", "ttft", "train", "--config", str(cfile), "--run-dir", str(run_dir), "--json"],
                         log, env)
                train_s = time.time() - t0
                pred_src = ["--run", str(run_dir)]
            progress(f"[{row}] predicting {len(ids)} tasks × {cfg.views} views")
            t1 = time.time()
            pred = _run([py, "-m", "ttft", "predict", *pred_src, "--dataset", cfg.dataset, "--tasks", ",".join(ids),
                         "--views", str(cfg.views), "--out", str(rdir / "predictions"), "--json"], log, env)
            results[row] = {
                "experiment": row, "status": "finished", "val_loss": pred.get("val_loss"),
                "accuracy": pred.get("accuracy"), "pass_at_2": pred.get("pass_at_2"), "vote_1": pred.get("vote_1"),
                "correct_pixels": pred.get("correct_pixels"), "unanswered": pred.get("unanswered"),
                "train_seconds": train_s, "predict_seconds": time.time() - t1, "wall_seconds": time.time() - t0,
                "ttft_seconds_per_task_per_100_steps": (train_s / len(ids) * 100 / cfg.steps) if train_s else None,
                "n_tasks": pred.get("n_tasks"), "predictions": str(rdir / "predictions"),
                "run_dir": str(rdir / "run") if ROWS[row] is not None else None,
            }
            write_json_atomic(out / "results.json", {"config": cfg.to_json(), "rows": results})
            (out / "results.md").write_text(results_markdown(cfg, results))
            exp.update_status(rows_done=k + 1)
            progress(f"[{row}] val loss {results[row]['val_loss']}, accuracy {results[row]['accuracy']}")
    except BaseException as e:
        exp.update_status(status="failed", error=f"{type(e).__name__}: {e}", ended=time.time())
        raise
    exp.update_status(status="finished", ended=time.time())
    return {"config": cfg.to_json(), "rows": results}


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f}%" if pct else (f"{v:.4f}" if isinstance(v, float) else str(v))


def results_markdown(cfg: AblationConfig, rows: dict) -> str:
    lines = ["| experiment | val loss | val accuracy | pass@2 | TTFT time (s) | total time (s) |",
             "|---|---|---|---|---|---|"]
    for name in cfg.rows:
        r = rows.get(name)
        if not r:
            continue
        lines.append(f"| {name} | {_fmt(r['val_loss'])} | {_fmt(r['accuracy'], True)} | {_fmt(r['pass_at_2'], True)} "
                     f"| {r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def experiments_root() -> Path:
    return runs_root() / "experiments"


def list_experiments(root: Path | None = None) -> list[Path]:
    root = root or experiments_root()
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if (p / "config.json").exists()), key=lambda p: p.stat().st_mtime,
                  reverse=True)


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
        out[name] = {"improved": int((both[name] < both["baseline"]).sum()), "n": int(len(both)),
                     "mean_change": float(rel.mean()), "median_change": float(rel.median())}
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
        recs.append({"experiment": name, "val loss": r.get("val_loss"), "val accuracy": r.get("accuracy"),
                     "pass@2": r.get("pass_at_2"), "vote@1": r.get("vote_1"), "pixels": r.get("correct_pixels"),
                     "tasks better than baseline": f"{c['improved']}/{c['n']}" if c else None,
                     "mean loss change per task": c["mean_change"] if c else None,
                     "TTFT s": r.get("train_seconds"), "total s": r.get("wall_seconds"),
                     "s/task/100 steps": r.get("ttft_seconds_per_task_per_100_steps")})
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
            fig.add_trace(go.Scatter(x=df["experiment"], y=df[col], name=col, mode="markers+lines",
                                     marker={"size": 10, "color": colour}), secondary_y=True)
    fig.update_yaxes(title_text="val loss (test outputs)", secondary_y=False)
    fig.update_yaxes(title_text="share of test outputs", tickformat=".1%", secondary_y=True, rangemode="tozero")
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"})
    return fig
