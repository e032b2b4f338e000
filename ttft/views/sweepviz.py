"""Plotly figures of experiments (pure functions: an experiment's results in, a figure out; no streamlit here).

- :func:`ablation_figure`: val loss (bars) and accuracy / pass@2 (markers) per row, the seed ablation's chart;
- :func:`loss_vs_value`: val loss against one swept option's values, a line per combination of the others;
- :func:`task_heatmap`: each task's val loss under each row (relative to the first row's, or absolute);
- :func:`compare_figure`: the val loss of the rows of several experiments side by side.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ttft.runs.experiments import per_task_losses, reference, results_frame, row_order, swept_values

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 30, "b": 10}, "legend": {"orientation": "h"}}


def ablation_figure(results: dict, exp_dir: Path | None = None) -> go.Figure:
    """Val loss (bars) and accuracy / pass@2 (markers, second axis) per row; without predictions (``--no-predict``)
    the val loss alone, no empty second axis."""
    df = results_frame(results, exp_dir)
    scored = [c for c in ("val accuracy", "pass@2") if len(df) and df[c].notna().any()]
    fig = make_subplots(specs=[[{"secondary_y": bool(scored)}]])
    if len(df):
        fig.add_trace(go.Bar(x=df["experiment"], y=df["val loss"], name="val loss", marker_color="#0074D9"))
        for col, colour in (("val accuracy", "#FF4136"), ("pass@2", "#2ECC40")):
            if col not in scored:
                continue
            fig.add_trace(
                go.Scatter(
                    x=df["experiment"], y=df[col], name=col, mode="markers+lines", marker={"size": 10, "color": colour}
                ),
                secondary_y=True,
            )
    fig.update_yaxes(title_text="val loss (test outputs)", secondary_y=False)
    if scored:
        fig.update_yaxes(title_text="share of test outputs", tickformat=".1%", secondary_y=True, rangemode="tozero")
    fig.update_layout(height=380, **_LAYOUT)
    return fig


def swept_options(results: dict) -> list[str]:
    """The options that take more than one value across the rows (what the sweep varies)."""
    vals = swept_values(results)
    return [c for c in vals.columns if vals[c].astype(str).nunique(dropna=False) > 1]


def loss_vs_value(results: dict, option: str, exp_dir: Path | None = None) -> go.Figure:
    """Val loss of the finished rows against the values of ``option`` (numbers on a log axis when they span a
    decade or more), one line per combination of the other swept options."""
    vals = swept_values(results)
    df = results_frame(results, exp_dir).set_index("experiment")
    fig = go.Figure()
    if option not in vals.columns or df.empty:
        return fig
    data = vals.join(df["val loss"], how="inner").dropna(subset=["val loss"])
    others = [c for c in swept_options(results) if c != option]
    groups = data.groupby([data[c].astype(str) for c in others], sort=False) if others else [("", data)]
    numeric = pd.api.types.is_numeric_dtype(data[option])
    for key, part in groups:
        part = part.sort_values(option) if numeric else part
        label = ", ".join(f"{c}={v}" for c, v in zip(others, key if isinstance(key, tuple) else (key,))) or "val loss"
        fig.add_trace(go.Scatter(x=part[option], y=part["val loss"], mode="lines+markers", name=label))
    log = numeric and (data[option] > 0).all() and data[option].max() >= 10 * data[option].min()
    fig.update_xaxes(title_text=option, type="log" if log else None)
    fig.update_yaxes(title_text="val loss (test outputs)")
    fig.update_layout(height=340, **_LAYOUT)
    return fig


def task_heatmap(results: dict, exp_dir: Path | None = None, relative: bool = True) -> go.Figure:
    """Each task's val loss (rows of the map) under each experiment row (columns); ``relative``: the change
    against the first row's (the baseline's) loss, -0.3 = 30 % lower, blue lower and red higher."""
    losses = per_task_losses(results, exp_dir)
    fig = go.Figure()
    if losses.empty:
        return fig
    ref = reference(results, list(losses.columns))
    cols = [c for c in row_order(results) if c in losses.columns]
    z = losses[cols]
    if relative and ref is not None:
        z = z.div(losses[ref].where(losses[ref] > 0), axis=0) - 1
    fig.add_trace(
        go.Heatmap(
            z=z.to_numpy(),
            x=cols,
            y=list(z.index),
            colorscale="RdBu_r" if relative else "Viridis",
            zmid=0 if relative else None,
            colorbar={"title": f"vs {ref}" if relative else "val loss", "tickformat": ".0%" if relative else None},
            hovertemplate="task %{y}<br>%{x}<br>%{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(height=max(300, 16 * len(z) + 120), yaxis={"type": "category"}, **_LAYOUT)
    return fig


def compare_figure(table: pd.DataFrame) -> go.Figure:
    """Val loss per row, a bar group per experiment (the :func:`ttft.runs.experiments.compare_frame`)."""
    fig = go.Figure()
    for name, part in table.groupby("experiment", sort=False) if len(table) else []:
        fig.add_trace(go.Bar(x=part["row"], y=part["val loss"], name=str(name)))
    fig.update_yaxes(title_text="val loss (test outputs)")
    fig.update_layout(height=360, barmode="group", **_LAYOUT)
    return fig
