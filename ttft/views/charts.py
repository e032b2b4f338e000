"""Plotly figures and tables of runs (pure functions: data in, figure or frame out; nothing here imports streamlit).

A per-task run (``--per-task``: one adapter per task, each trained from the base model) logs a ``task`` and a
``task_step`` on its metrics lines; it is drawn as one curve per task over the task's own steps, and summarised by
:func:`task_table` (one row per task) and :func:`task_means` (the means over tasks)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ttft.runs.metrics import MAX_POINTS, Metrics, format_seconds

LOSS_COLOR = "#0074D9"
EVAL_COLOR = "#FF851B"
LR_COLOR = "#AAAAAA"
RAW_COLOR = "rgba(0, 116, 217, 0.3)"
#: one colour per task (cycled)
TASK_COLORS = (
    "#0074D9",
    "#FF4136",
    "#2ECC40",
    "#B10DC9",
    "#FF851B",
    "#39CCCC",
    "#85144b",
    "#3D9970",
    "#F012BE",
    "#7FDBFF",
    "#01FF70",
    "#AAAAAA",
)
#: from this many logged steps on, an exponential moving average is drawn over the (then faint) raw loss
SMOOTH_FROM = 50
#: above this many points the traces use WebGL (scattergl): smooth in the browser with 10,000+ steps
GL_POINTS = 1500
#: the metrics column of the validation loss of the untrained model (per task, on the task's first eval line)
BEFORE = "val_loss_before"


# --------------------------------------------------------------------------- per-task structure


def tasks_of(m: Metrics) -> list[str]:
    """The tasks of a per-task run in the order they were trained ([] for a run with one adapter)."""
    return list(m.task_rows())


def _task_mask(m: Metrics, task: str) -> np.ndarray:
    mask = np.zeros(m.n, dtype=bool)
    rows = m.task_rows().get(task)
    if rows is not None:
        mask[rows] = True
    return mask


def _task_x(m: Metrics, mask: np.ndarray) -> np.ndarray:
    """The x of a task's lines on its own step axis: ``task_step``; for a line without one (the end-of-task eval)
    its global ``step`` less the task's offset (``step - task_step`` of its training lines)."""
    step, ts = m.col("step")[mask], m.col("task_step")[mask]
    x = ts.copy()
    both = ~np.isnan(step) & ~np.isnan(ts)
    if both.any():
        off = float(np.median(step[both] - ts[both]))
        x = np.where(np.isnan(x), step - off, x)
    else:
        x = np.where(np.isnan(x), np.nanmax(ts) if (~np.isnan(ts)).any() else np.nan, x)
    return x


def segments(m: Metrics, mask: np.ndarray | None = None) -> list[tuple[float, float]]:
    """(start, end) wall-clock times of the training segments in the (masked) metrics lines: a process's
    trainer (one per task in per-task runs) starts a segment, a resumed one starts a new one. A line's segment
    starts at ``time - elapsed``; a line without ``elapsed`` (an eval line) extends the segment before it."""
    t, el = m.col("time"), m.col("elapsed")
    if mask is not None:
        t, el = t[mask], el[mask]
    s = t - el
    has = ~np.isnan(s)
    if not has.any():
        return []
    sv = s[has]
    new = np.r_[True, np.abs(np.diff(sv)) > 1e-3]
    seg_valid = np.cumsum(new) - 1
    seg_full = np.full(len(t), -1)
    seg_full[has] = seg_valid
    last = np.maximum.accumulate(np.where(has, np.arange(len(t)), -1))
    seg = np.where(last >= 0, seg_full[np.maximum(last, 0)], -1)
    starts = sv[new]
    ends = starts.copy()
    sel = (seg >= 0) & ~np.isnan(t)
    np.maximum.at(ends, seg[sel], t[sel])
    return [(float(a), float(b)) for a, b in zip(starts, ends)]


def seconds(m: Metrics, mask: np.ndarray | None = None) -> float | None:
    """Time spent training (and evaluating), summed over segments (resumes); None when nothing was logged."""
    segs = segments(m, mask)
    return sum(b - a for a, b in segs) if segs else None


def run_seconds(m: Metrics, raw: dict, status: str, now: float) -> float | None:
    """A run's time over all its lives: the segments of the processes before the current (or last) one, from
    metrics.jsonl, plus that process's own time (``started`` → now while it runs, → ``ended`` once it ended). The
    time between a stop and its resume, and in the queue, is not counted."""
    segs = segments(m)
    if per_task := tasks_of(m):
        segs = sorted(s for t in per_task for s in segments(m, _task_mask(m, t)))
    started, ended = raw.get("started"), raw.get("ended")
    if isinstance(started, (int, float)):
        prev = sum(b - a for a, b in segs if b < started)
        if status in ("running", "stopping"):
            return prev + max(0.0, now - started)
        if isinstance(ended, (int, float)) and ended >= started and status in ("stopped", "finished", "failed"):
            return prev + ended - started
    return sum(b - a for a, b in segs) if segs else None


def _last(a: np.ndarray) -> float:
    ok = a[~np.isnan(a)]
    return float(ok[-1]) if ok.size else np.nan


def _first(a: np.ndarray) -> float:
    ok = a[~np.isnan(a)]
    return float(ok[0]) if ok.size else np.nan


def task_table(m: Metrics, steps_per_task: int | None = None, current: str | None = None) -> pd.DataFrame:
    """One row per task of a per-task run: its steps, final train loss, val loss before TTFT (when the run
    logged it, column ``val loss before``) and after (the end-of-task eval), the change, and its time. ``current``
    is the task being trained now (its row says so)."""
    rows = []
    has_before = BEFORE in m.columns
    for task in tasks_of(m):
        mask = _task_mask(m, task)
        loss, ev = m.col("loss")[mask], m.col("eval_loss")[mask]
        final = m.col("final")[mask] if "final" in m.columns else np.zeros(int(mask.sum()))
        done_eval = ev[(final == 1) & ~np.isnan(ev)]
        after = float(done_eval[-1]) if done_eval.size else np.nan
        before = _first(m.col(BEFORE)[mask]) if has_before else np.nan
        ts = m.col("task_step")[mask]
        step = int(np.nanmax(ts)) if (~np.isnan(ts)).any() else 0
        secs = seconds(m, mask)
        state = "done" if done_eval.size else ("training" if task == current else "stopped")
        row = {
            "task": task,
            "state": state,
            "steps": f"{step}/{steps_per_task}" if steps_per_task else str(step),
            "train loss": _last(loss),
        }
        if has_before:
            row["val loss before"] = before
        row["val loss after"] = after
        if has_before:
            row["change"] = after - before
        row["time"] = format_seconds(secs) if secs is not None else "–"
        row["seconds"] = secs
        rows.append(row)
    cols = [
        "task",
        "state",
        "steps",
        "train loss",
        *(["val loss before"] if has_before else []),
        "val loss after",
        *(["change"] if has_before else []),
        "time",
        "seconds",
    ]
    return pd.DataFrame(rows, columns=cols)


def task_means(table: pd.DataFrame) -> dict:
    """The means over the tasks of :func:`task_table` (NaN-skipping; ``n`` tasks, ``done`` with a final eval)."""
    out: dict = {"n": len(table), "done": int((table["state"] == "done").sum()) if len(table) else 0}
    for col in ("train loss", "val loss before", "val loss after", "change", "seconds"):
        if col in table and table[col].notna().any():
            out[col] = float(pd.to_numeric(table[col], errors="coerce").mean())
    if "seconds" in table and table["seconds"].notna().any():
        out["total seconds"] = float(table["seconds"].sum())
    return out


# --------------------------------------------------------------------------- the loss figure


def loss_figure(
    m: Metrics,
    log_y: bool = False,
    height: int = 360,
    uirevision: str | None = None,
    task: str | None = None,
    max_points: int = MAX_POINTS,
) -> go.Figure:
    """Training loss over the whole run (no window: a 5-step run shows 5 points), eval loss as markers on the same
    axis, and the learning rate as a dotted line on a secondary axis. A run of more than ``max_points`` logged
    lines is drawn from :meth:`Metrics.downsample_rows` (the minimum and maximum of each stretch of steps kept, so
    spikes stay visible; per task for a per-task run): a figure stays a few thousand points per trace however long
    the run, and the smoothed line is computed over every step before it is thinned the same way.

    A per-task run is drawn as one curve per task over the task's own steps (``task``: only that one), its eval
    losses as unconnected markers in the task's colour, the val loss before TTFT (when logged) as an open
    circle at step 0. ``uirevision`` (e.g. the run id) keeps the user's zoom across live refreshes of the same
    run."""
    tasks = tasks_of(m)
    if tasks:
        if task in tasks:  # one task's curve gets the whole budget
            m = m.take(np.flatnonzero(_task_mask(m, task)))
        data, n, lr_max = _per_task_traces(m, [task] if task in tasks else tasks, _kept(m, max_points))
        x_title = "step of the task"
    else:
        data, n, lr_max = _run_traces(m, _kept(m, max_points))
        x_title = "step"
    layout = go.Layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        uirevision=uirevision,
        hovermode="closest" if tasks else "x",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
        # from 0; with val-loss-before markers at 0, padded so that they are not cut in half by the axis
        xaxis=dict(title=x_title, rangemode=("normal" if BEFORE in m.columns else "tozero") if n else None),
        yaxis=dict(title="loss" + (" (log)" if log_y else ""), type="log" if log_y else "linear"),
        # an explicit range from 0: autorange pads below 0 and shows a negative learning rate tick
        # (ticks of its own, not at the loss axis's grid lines: those map below 0 too)
        yaxis2=dict(
            title="learning rate",
            overlaying="y",
            side="right",
            showgrid=False,
            tickformat=".1e",
            range=[0.0, lr_max * 1.05 if lr_max else 1.0],
            rangemode="nonnegative",
            zeroline=False,
            tickmode="auto",
            nticks=6,
        ),
        plot_bgcolor="white",
    )
    fig = go.Figure(data=data, layout=layout)
    fig.update_xaxes(gridcolor="#EEE", zeroline=False)
    fig.update_yaxes(gridcolor="#EEE", zeroline=False)
    if not n and not any(t.name and "eval" in t.name for t in data):
        fig.add_annotation(text="no step logged yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def _kept(m: Metrics, max_points: int) -> np.ndarray:
    """Which rows the figure draws (a boolean mask): all of a short run, :meth:`Metrics.downsample_rows` else."""
    keep = np.zeros(m.n, dtype=bool)
    keep[m.downsample_rows(max_points)] = True
    return keep


def _lr_max(lr: np.ndarray) -> float | None:
    ok = lr[~np.isnan(lr)]
    return float(ok.max()) if ok.size and ok.max() > 0 else None


def _run_traces(m: Metrics, keep: np.ndarray) -> tuple[list, int, float | None]:
    step, loss, ev, lr = m.col("step"), m.col("loss"), m.col("eval_loss"), m.col("lr")
    tr = ~np.isnan(loss) & ~np.isnan(step)
    n = int(tr.sum())
    smooth = n >= SMOOTH_FROM
    sm = ema(loss[tr], max(5, n // 40))[keep[tr]] if smooth else None  # over every step, then thinned
    es = ~np.isnan(ev) & ~np.isnan(step) & keep
    ls = ~np.isnan(lr) & ~np.isnan(step) & keep
    tr &= keep
    Scatter = go.Scattergl if int(tr.sum()) > GL_POINTS else go.Scatter
    mode = "lines+markers" if n <= 200 else "lines"
    data = [
        Scatter(
            x=step[tr],
            y=loss[tr],
            mode=mode,
            name="train loss",
            line=dict(color=RAW_COLOR if smooth else LOSS_COLOR, width=1 if smooth else 1.5),
            marker=dict(size=5),
            hovertemplate="step %{x}<br>loss %{y:.4g}<extra></extra>",
        )
    ]
    if smooth:
        data.append(
            Scatter(
                x=step[tr],
                y=sm,
                mode="lines",
                name="smoothed",
                line=dict(color=LOSS_COLOR, width=2),
                hoverinfo="skip",
            )
        )
    if es.any():
        data.append(
            go.Scatter(
                x=step[es],
                y=ev[es],
                mode="lines+markers",
                name="eval loss",
                line=dict(color=EVAL_COLOR, width=1.5, dash="dot"),
                marker=dict(size=8, symbol="diamond"),
                hovertemplate="step %{x}<br>eval loss %{y:.4g}<extra></extra>",
            )
        )
    before = m.col(BEFORE)
    if (~np.isnan(before)).any():
        data.append(
            go.Scatter(
                x=[0],
                y=[_first(before)],
                mode="markers",
                name="val loss before",
                marker=dict(size=9, symbol="circle-open", color=EVAL_COLOR, line=dict(width=2)),
                hovertemplate="before training<br>val loss %{y:.4g}<extra></extra>",
            )
        )
    if ls.any():
        data.append(
            Scatter(
                x=step[ls],
                y=lr[ls],
                mode="lines",
                name="learning rate",
                yaxis="y2",
                line=dict(color=LR_COLOR, width=1, dash="dot"),
                hovertemplate="step %{x}<br>lr %{y:.3g}<extra></extra>",
            )
        )
    return data, n, _lr_max(lr[ls])


def _per_task_traces(m: Metrics, tasks: list[str], keep: np.ndarray) -> tuple[list, int, float | None]:
    loss_all, ev_all, lr_all, before_all = m.col("loss"), m.col("eval_loss"), m.col("lr"), m.col(BEFORE)
    masks = {t: _task_mask(m, t) for t in tasks}
    n_total = int(sum((~np.isnan(loss_all[mk])).sum() for mk in masks.values()))
    drawn = int((~np.isnan(loss_all) & keep).sum())
    Scatter = go.Scattergl if drawn > GL_POINTS else go.Scatter
    data: list = []
    lr_max = None
    for i, task in enumerate(tasks):
        mk = masks[task]
        color = TASK_COLORS[i % len(TASK_COLORS)]
        x, loss, ev, lr, before = _task_x(m, mk), loss_all[mk], ev_all[mk], lr_all[mk], before_all[mk]
        kt = keep[mk]
        tr = ~np.isnan(loss) & ~np.isnan(x)
        n = int(tr.sum())
        smooth = n >= SMOOTH_FROM
        y = ema(loss[tr], max(5, n // 40))[kt[tr]] if smooth else loss[tr][kt[tr]]  # over every step, then thinned
        tr &= kt
        if smooth:
            data.append(
                Scatter(
                    x=x[tr],
                    y=loss[tr],
                    mode="lines",
                    name=task,
                    legendgroup=task,
                    showlegend=False,
                    opacity=0.25,
                    line=dict(color=color, width=1),
                    hoverinfo="skip",
                )
            )
        data.append(
            Scatter(
                x=x[tr],
                y=y,
                mode="lines+markers" if n <= 200 else "lines",
                name=task,
                legendgroup=task,
                line=dict(color=color, width=1.5),
                marker=dict(size=4),
                hovertemplate=f"{task}<br>step %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
            )
        )
        es = ~np.isnan(ev) & ~np.isnan(x) & kt
        if es.any():  # markers only: the evals of different tasks are different models, not a trend
            data.append(
                go.Scatter(
                    x=x[es],
                    y=ev[es],
                    mode="markers",
                    name=f"{task} eval loss",
                    legendgroup=task,
                    showlegend=False,
                    marker=dict(size=9, symbol="diamond", color=color),
                    hovertemplate=f"{task}<br>step %{{x}}<br>eval loss %{{y:.4g}}<extra></extra>",
                )
            )
        if (~np.isnan(before)).any():
            data.append(
                go.Scatter(
                    x=[0],
                    y=[_first(before)],
                    mode="markers",
                    name=f"{task} val loss before",
                    legendgroup=task,
                    showlegend=False,
                    marker=dict(size=9, symbol="circle-open", color=color, line=dict(width=2)),
                    hovertemplate=f"{task}<br>before TTFT<br>val loss %{{y:.4g}}<extra></extra>",
                )
            )
        ls = ~np.isnan(lr) & ~np.isnan(x) & kt
        if ls.any() and lr_max is None:  # every task restarts the same schedule: drawn once
            lr_max = _lr_max(lr[ls])
            data.append(
                Scatter(
                    x=x[ls],
                    y=lr[ls],
                    mode="lines",
                    name="learning rate (each task)",
                    yaxis="y2",
                    line=dict(color=LR_COLOR, width=1, dash="dot"),
                    hovertemplate="step %{x}<br>lr %{y:.3g}<extra></extra>",
                )
            )
    # legend keys for the marker kinds (drawn in each task's colour)
    if any(t.name.endswith("eval loss") for t in data):
        data.append(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="eval loss (diamonds)",
                marker=dict(size=9, symbol="diamond", color="#666"),
            )
        )
    if any(t.name.endswith("val loss before") for t in data):
        data.append(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="val loss before (circles)",
                marker=dict(size=9, symbol="circle-open", color="#666", line=dict(width=2)),
            )
        )
    return data, n_total, lr_max


def ema(y: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average (``ewm(span=…)``), for the smoothed loss line."""
    return pd.Series(y).ewm(span=span).mean().to_numpy()
