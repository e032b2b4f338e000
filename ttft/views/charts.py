"""Plotly figures of runs (pure functions: data in, figure out; nothing here imports streamlit)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ttft.runs.metrics import Metrics

LOSS_COLOR = "#0074D9"
EVAL_COLOR = "#FF851B"
LR_COLOR = "#AAAAAA"
RAW_COLOR = "rgba(0, 116, 217, 0.3)"
#: from this many logged steps on, an exponential moving average is drawn over the (then faint) raw loss
SMOOTH_FROM = 50
#: above this many points the traces use WebGL (scattergl): smooth in the browser with 10,000+ steps
GL_POINTS = 1500


def loss_figure(m: Metrics, log_y: bool = False, height: int = 360, uirevision: str | None = None) -> go.Figure:
    """Training loss at every logged step over the whole run (no window, no thinning: a 5-step run shows 5
    points), eval loss as markers on the same axis, and the learning rate as a dotted line on a secondary axis.

    ``uirevision`` (e.g. the run id) keeps the user's zoom across live refreshes of the same run."""
    step, loss, ev, lr = m.col("step"), m.col("loss"), m.col("eval_loss"), m.col("lr")
    tr = ~np.isnan(loss) & ~np.isnan(step)
    es = ~np.isnan(ev) & ~np.isnan(step)
    ls = ~np.isnan(lr) & ~np.isnan(step)
    n = int(tr.sum())
    Scatter = go.Scattergl if n > GL_POINTS else go.Scatter
    mode = "lines+markers" if n <= 200 else "lines"
    smooth = n >= SMOOTH_FROM
    data = [Scatter(x=step[tr], y=loss[tr], mode=mode, name="train loss",
                    line=dict(color=RAW_COLOR if smooth else LOSS_COLOR, width=1 if smooth else 1.5),
                    marker=dict(size=5), hovertemplate="step %{x}<br>loss %{y:.4g}<extra></extra>")]
    if smooth:
        data.append(Scatter(x=step[tr], y=ema(loss[tr], max(5, n // 40)), mode="lines", name="smoothed",
                            line=dict(color=LOSS_COLOR, width=2), hoverinfo="skip"))
    if es.any():
        data.append(go.Scatter(x=step[es], y=ev[es], mode="lines+markers", name="eval loss",
                               line=dict(color=EVAL_COLOR, width=1.5, dash="dot"),
                               marker=dict(size=8, symbol="diamond"),
                               hovertemplate="step %{x}<br>eval loss %{y:.4g}<extra></extra>"))
    if ls.any():
        data.append(Scatter(x=step[ls], y=lr[ls], mode="lines", name="learning rate", yaxis="y2",
                            line=dict(color=LR_COLOR, width=1, dash="dot"),
                            hovertemplate="step %{x}<br>lr %{y:.3g}<extra></extra>"))
    layout = go.Layout(
        height=height, margin=dict(l=10, r=10, t=30, b=10), uirevision=uirevision, hovermode="x",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
        xaxis=dict(title="step", rangemode="tozero" if n else None),
        yaxis=dict(title="loss" + (" (log)" if log_y else ""), type="log" if log_y else "linear"),
        yaxis2=dict(title="learning rate", overlaying="y", side="right", showgrid=False, tickformat=".1e",
                    rangemode="tozero"),
        plot_bgcolor="white",
    )
    fig = go.Figure(data=data, layout=layout)
    fig.update_xaxes(gridcolor="#EEE", zeroline=False)
    fig.update_yaxes(gridcolor="#EEE", zeroline=False)
    if not n and not es.any():
        fig.add_annotation(text="no step logged yet", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def ema(y: np.ndarray, span: int) -> np.ndarray:
    """Exponential moving average (``ewm(span=…)``), for the smoothed loss line."""
    import pandas as pd

    return pd.Series(y).ewm(span=span).mean().to_numpy()
