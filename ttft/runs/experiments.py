"""The table of an experiment (a sweep, the seed ablation): read from its ``results.json`` and its rows' folders.

The table is the seed experiment's: experiment (the row), val loss, accuracy, pass@2, the tasks whose val loss is
below the first row's (the baseline's, in the seed ablation), and time. Per-task val losses come from each row's
prediction (``rows/<row>/predictions/metrics.json``), or, for a row without one (a sweep with ``predict`` off),
from its TTFT run's ``result.json``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttft.runs.rundir import read_json

if TYPE_CHECKING:
    import pandas as pd


def slug(row: str) -> str:
    """A row's name in folder and job names: ``n-1 + geometric`` -> ``n-1+geometric``."""
    return row.replace(" + ", "+").replace(" ", "-")


def row_folder(name: str) -> str:
    """The row's folder under ``<out>/rows/`` (the seed ablation's: ``n-1+geometric``)."""
    out = re.sub(r"[^A-Za-z0-9._+=-]+", "_", slug(name))[:120]
    return out if out.strip(".") else "_" + out


#: the reference row's name in the seed ablation; any other first row is "the first row"
BASELINE = "baseline"


def fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{100 * v:.1f}%" if pct else (f"{v:.4f}" if isinstance(v, float) else str(v))


def row_order(results: dict) -> list[str]:
    """The rows in the experiment's order (its config's ``rows``), then any others recorded."""
    order = list((results.get("config") or {}).get("rows") or [])
    return order + [n for n in (results.get("rows") or {}) if n not in order]


def reference(results: dict, present: list[str] | None = None) -> str | None:
    """The row the others are compared with: ``baseline`` where there is one, else the first row."""
    names = present if present is not None else [n for n in row_order(results) if n in (results.get("rows") or {})]
    if BASELINE in names:
        return BASELINE
    return names[0] if names else None


def better_label(ref: str | None) -> str:
    return "tasks better than baseline" if ref == BASELINE else "tasks better than first row"


def _row_losses(name: str, r: dict, exp_dir: Path | None) -> dict[str, Any] | None:
    cands = [Path(r["predictions"])] if r.get("predictions") else []
    if exp_dir is not None:
        cands.append(Path(exp_dir) / "rows" / row_folder(name) / "predictions")
    m = next((read_json(c / "metrics.json") for c in cands if (c / "metrics.json").exists()), None)
    if m:
        return {tid: v.get("val_loss") for tid, v in (m.get("per_task") or {}).items()}
    if r.get("predictions") is None:  # no prediction: the TTFT run's per-task val losses
        runs = [Path(r["run_dir"])] if r.get("run_dir") else []
        if exp_dir is not None:
            runs.append(Path(exp_dir) / "rows" / row_folder(name) / "run")
        res = next((read_json(c / "result.json") for c in runs if (c / "result.json").exists()), None)
        if res and res.get("per_task"):
            return {tid: v.get("val_loss") for tid, v in res["per_task"].items()}
    return None


def per_task_losses(results: dict, exp_dir: Path | None = None) -> pd.DataFrame:
    """Test-output val loss of every task (index) under every finished row (columns), read from each row's
    ``predictions/metrics.json``; the recorded path first, else ``<exp_dir>/rows/<row>/predictions``; a row
    without a prediction: its TTFT run's per-task val losses."""
    import pandas as pd

    cols = {}
    for name in row_order(results):
        r = (results.get("rows") or {}).get(name)
        if not r:
            continue
        got = _row_losses(name, r, exp_dir)
        if got:
            cols[name] = got
    return pd.DataFrame(cols, dtype=float)


def vs_reference(losses: pd.DataFrame, ref: str | None = BASELINE) -> dict[str, dict]:
    """Per row: on how many tasks (with a loss in both) the val loss is below the reference row's, and the mean
    relative change of the per-task loss (-0.3: 30% lower on average), as the outside reference states its
    result."""
    if ref is None or ref not in losses.columns:
        return {}
    out = {}
    for name in losses.columns:
        if name == ref:
            continue
        both = losses[[ref, name]].dropna()
        both = both[both[ref] > 0]
        if both.empty:
            continue
        rel = (both[name] - both[ref]) / both[ref]
        out[name] = {
            "improved": int((both[name] < both[ref]).sum()),
            "n": int(len(both)),
            "mean_change": float(rel.mean()),
            "median_change": float(rel.median()),
        }
    return out


def vs_baseline(losses: pd.DataFrame) -> dict[str, dict]:
    """:func:`vs_reference` against the ``baseline`` row."""
    return vs_reference(losses, BASELINE)


def results_frame(results: dict, exp_dir: Path | None = None) -> pd.DataFrame:
    """The table as a DataFrame in the seed experiment's form (rows in the configured order), with the per-task
    comparison against the baseline (or the first row) where the rows' per-task losses can be read."""
    import pandas as pd

    rows = results.get("rows") or {}
    names = [n for n in row_order(results) if rows.get(n)]
    ref = reference(results, names)
    cmp = vs_reference(per_task_losses(results, exp_dir), ref) if rows else {}
    label = better_label(ref)
    recs = []
    for name in names:
        r = rows[name]
        c = cmp.get(name)
        recs.append(
            {
                "experiment": name,
                "val loss": r.get("val_loss"),
                "val accuracy": r.get("accuracy"),
                "pass@2": r.get("pass_at_2"),
                "vote@1": r.get("vote_1"),
                "pixels": r.get("correct_pixels"),
                label: f"{c['improved']}/{c['n']}" if c else None,
                "mean loss change per task": c["mean_change"] if c else None,
                "TTFT s": r.get("train_seconds"),
                "total s": r.get("wall_seconds"),
                "s/task/100 steps": r.get("ttft_seconds_per_task_per_100_steps"),
            }
        )
    return pd.DataFrame(recs)


def results_markdown(order: list[str], rows: dict, exp_dir: Path | None = None) -> str:
    """``results.md``: the table in the seed's form."""
    results = {"config": {"rows": list(order)}, "rows": rows}
    df = results_frame(results, exp_dir)
    label = next((c for c in df.columns if c.startswith("tasks better")), better_label(None))
    lines = [
        f"| experiment | val loss | val accuracy | pass@2 | {label} | TTFT time (s) | total time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for rec in df.to_dict("records"):
        r = rows[rec["experiment"]]
        better = rec.get(label) if isinstance(rec.get(label), str) else "—"
        lines.append(
            f"| {rec['experiment']} | {fmt(r.get('val_loss'))} | {fmt(r.get('accuracy'), True)} "
            f"| {fmt(r.get('pass_at_2'), True)} | {better} | {r.get('train_seconds') or 0:.0f} "
            f"| {r.get('wall_seconds') or 0:.0f} |"
        )
    return "\n".join(lines) + "\n"


def swept_values(results: dict) -> pd.DataFrame:
    """The options each row sets (columns: the row keys, ``lr``, ``train.augment.colors``, …; index: the rows),
    for the plots of val loss against each swept value. Empty for an experiment that records no row options."""
    import pandas as pd

    opts = results.get("row_options") or {}
    names = [n for n in row_order(results) if n in opts]
    recs = {n: {k: (", ".join(map(str, v)) if isinstance(v, list) else v) for k, v in opts[n].items()} for n in names}
    return pd.DataFrame.from_dict(recs, orient="index") if recs else pd.DataFrame()


def compare_frame(experiments: dict[str, tuple[dict, Path | None]]) -> pd.DataFrame:
    """The rows of several experiments in one table (``{label: (results, folder)}``): experiment, row, val loss,
    accuracy, pass@2, time."""
    import pandas as pd

    parts = []
    for label, (results, folder) in experiments.items():
        df = results_frame(results, folder)
        if df.empty:
            continue
        df = df.rename(columns={"experiment": "row"})
        df.insert(0, "experiment", label)
        parts.append(df[["experiment", "row", "val loss", "val accuracy", "pass@2", "TTFT s", "total s"]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
