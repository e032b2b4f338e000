"""Pictures and tables of predictions: cell-diff PNGs, per-task tables, before/after flips, run comparisons and plotly
figures. Pure functions (data in, bytes/frames/figures out); nothing here imports streamlit."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ttft.core.metrics import as_grid, same_grid
from ttft.views import grids as viz

BLUE, ORANGE, GREEN, RED, GREY = "#0074D9", "#FF851B", "#2ECC40", "#FF4136", "#AAAAAA"

# --------------------------------------------------------------------------- diff images


def wrong_cells(pred: Any, truth: Any) -> np.ndarray:
    """Boolean mask over ``pred``'s cells: True where the cell is wrong (a different colour, or outside the truth's
    shape)."""
    p, t = as_grid(pred), as_grid(truth)
    if p is None:
        return np.zeros((0, 0), dtype=bool)
    wrong = np.ones(p.shape, dtype=bool)
    if t is None:
        return wrong
    h, w = min(p.shape[0], t.shape[0]), min(p.shape[1], t.shape[1])
    wrong[:h, :w] = p[:h, :w] != t[:h, :w]
    return wrong


#: what the marks of :func:`diff_png` mean (plain text: no emoji font needed)
DIFF_LEGEND = (
    "wrong or missing cells crossed: a crossed colour is a wrong colour; a hatched, crossed blank is a "
    "cell the truth has outside the attempt's shape (missing); an outlined cell lies outside the truth's "
    "shape (extra)"
)


def diff_masks(pred: Any, truth: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over the union of both shapes: cells of both grids with a different colour (``wrong``), cells only the
    attempt has (``extra``: outside the truth's shape) and cells only the truth has (``missing``: outside the
    attempt's shape)."""
    p, t = as_grid(pred), as_grid(truth)
    if p is None:
        raise ValueError("diff_masks needs a predicted grid")
    th, tw = (0, 0) if t is None else t.shape
    h, w = max(p.shape[0], th), max(p.shape[1], tw)
    in_p = np.zeros((h, w), dtype=bool)
    in_p[: p.shape[0], : p.shape[1]] = True
    in_t = np.zeros((h, w), dtype=bool)
    in_t[:th, :tw] = True
    wrong = np.zeros((h, w), dtype=bool)
    if t is not None:
        ch, cw = min(p.shape[0], th), min(p.shape[1], tw)
        wrong[:ch, :cw] = p[:ch, :cw] != t[:ch, :cw]
    return wrong, in_p & ~in_t, in_t & ~in_p


def diff_png(pred: Any, truth: Any, cell: int | None = None) -> bytes:
    """PNG of ``pred`` against the truth, over the union of both shapes (:func:`diff_masks`), so that a wrong colour
    never looks like a shape error:

    * a wrong colour: the attempt's colour, outlined and crossed (white marks on dark colours, near-black on light);
    * missing (the truth has the cell, the attempt's shape does not): a blank (backdrop) cell, hatched in grey with
      a thin cross, no outline — nothing was predicted there;
    * extra (the attempt has the cell, outside the truth's shape): the attempt's colour with a dashed outline;
    * cells of neither grid (an L-shaped corner): plain backdrop.
    """
    p = as_grid(pred)
    if p is None:
        raise ValueError("diff_png needs a predicted grid")
    wrong, extra, missing = diff_masks(p, truth)
    h, w = wrong.shape
    canvas = np.zeros((h, w), dtype=np.uint8)
    canvas[: p.shape[0], : p.shape[1]] = p
    cell = cell or viz.cell_size_for((h, w))
    img = viz.grid_index_image(canvas, cell, line=1)
    in_p = np.zeros((h, w), dtype=bool)
    in_p[: p.shape[0], : p.shape[1]] = True
    n = cell - 1
    d = np.arange(n)
    th = max(1, cell // 8)
    for i, j in zip(*np.nonzero(~in_p)):  # blank: missing cells and cells of neither grid
        img[i * cell + 1 : (i + 1) * cell, j * cell + 1 : (j + 1) * cell] = viz.BACKDROP
    for i, j in zip(*np.nonzero(wrong | extra | missing)):
        y0, x0 = i * cell + 1, j * cell + 1
        box = img[y0 : y0 + n, x0 : x0 + n]
        ink = viz.TEXT_DARK if missing[i, j] or not viz._DARK_COLOURS[canvas[i, j]] else viz.TEXT_LIGHT
        if missing[i, j]:
            yy, xx = np.mgrid[0:n, 0:n]
            box[(yy + xx) % 4 == 0] = viz.LINE  # grey hatch: a blank, not a colour
            box[d, d] = ink  # a thin cross
            box[d, n - 1 - d] = ink
        elif extra[i, j]:
            dash = (d // max(2, cell // 5)) % 2 == 0
            for edge in (box[:th, :], box[-th:, :]):
                edge[:, dash] = ink
            for edge in (box[:, :th], box[:, -th:]):
                edge[dash, :] = ink
        else:
            box[:th, :] = box[-th:, :] = box[:, :th] = box[:, -th:] = ink
            for k in range(th):  # both diagonals, th pixels thick
                ok = d + k < n
                box[d[ok], (d + k)[ok]] = ink
                box[d[ok], (n - 1 - d - k)[ok].clip(0)] = ink
    return viz.encode_png(img)


def gallery_html(items: Sequence[tuple[bytes, str]], height: int = 120) -> str:
    """A wrapping row of PNG images (data URIs) with a caption under each: one HTML block for many small grids
    (train pairs, candidates) instead of one image element each. Captions are escaped text."""
    import base64
    import html

    cells = []
    for png, caption in items:
        src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        cells.append(
            f'<figure style="margin:0 14px 10px 0;display:inline-block;vertical-align:top">'
            f'<img src="{src}" style="max-height:{height}px;image-rendering:pixelated" alt="">'
            f'<figcaption style="font-size:0.8rem;opacity:0.75">{html.escape(caption)}</figcaption>'
            "</figure>"
        )
    return '<div style="display:flex;flex-wrap:wrap;align-items:flex-start">' + "".join(cells) + "</div>"


def shape_text(g: Any) -> str:
    a = as_grid(g)
    return "—" if a is None else f"{a.shape[0]}×{a.shape[1]}"


# --------------------------------------------------------------------------- tables

TASK_COLUMNS = [
    "task",
    "solved",
    "pass_at_2",
    "vote_1",
    "accuracy",
    "correct_pixels",
    "correct_size",
    "size_match",
    "unanswered",
    "val_loss",
    "n_test",
    "candidates",
    "top_votes",
    "adapter",
]


def task_frame(tasks: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per task of a prediction's tasks.jsonl. ``size_match``: attempt 1 has the truth's shape on every
    test output (None when no truth is known); ``candidates``: distinct grids over the test outputs; ``top_votes``:
    votes of attempt 1 (first test output)."""
    rows = []
    for r in tasks:
        m = r.get("metrics", {})
        tests = r.get("tests", [])
        known = [t for t in tests if t.get("truth") is not None]
        size = None
        if known:
            size = all(
                as_grid(t["attempts"][0]) is not None and as_grid(t["attempts"][0]).shape == as_grid(t["truth"]).shape
                for t in known
            )
        cands = [c for t in tests for c in t.get("candidates", [])]
        first = tests[0].get("candidates", []) if tests else []
        solved = m.get("solved")
        rows.append(
            {
                "task": r["task"],
                "solved": None if solved is None else bool(solved),
                **{k: m.get(k) for k in ("pass_at_2", "vote_1", "accuracy", "correct_pixels", "correct_size")},
                "size_match": size,
                "unanswered": m.get("unanswered"),
                "val_loss": m.get("val_loss"),
                "n_test": len(tests),
                "candidates": len(cands),
                "top_votes": first[0]["votes"] if first else 0,
                "adapter": r.get("adapter"),
            }
        )
    return pd.DataFrame(rows, columns=TASK_COLUMNS)


def filter_tasks(
    df: pd.DataFrame,
    solved: str = "all",
    min_pixels: float = 0.0,
    loss: tuple[float, float] | None = None,
    size: str = "all",
    text: str = "",
) -> pd.DataFrame:
    """Rows of :func:`task_frame` matching: ``solved`` all/solved/unsolved, pixel accuracy at least ``min_pixels``,
    val loss within ``loss`` (rows without a loss are kept only when ``loss`` is None), ``size`` all/match/mismatch
    (of attempt 1), and task id containing ``text``."""
    keep = pd.Series(True, index=df.index)
    if solved == "solved":
        keep &= df["solved"].eq(True)
    elif solved == "unsolved":
        keep &= ~df["solved"].eq(True)
    if min_pixels > 0:
        keep &= df["correct_pixels"].fillna(0) >= min_pixels
    if loss is not None:
        keep &= df["val_loss"].between(loss[0], loss[1])
    if size == "match":
        keep &= df["size_match"].eq(True)
    elif size == "mismatch":
        keep &= df["size_match"].eq(False)
    if text:
        keep &= df["task"].str.contains(text, case=False, regex=False)
    return df[keep]


def describe_spec(spec: Mapping[str, Any] | None) -> str:
    """One short line for a view's augmentation spec (JSON), e.g. ``rot90 · colours 0325416789``."""
    if not spec:
        return "?"
    parts = [spec.get("geometric", "identity")]
    colors = spec.get("colors") or list(range(10))
    if list(colors) != list(range(10)):
        parts.append("colours " + "".join(map(str, colors)))
    if spec.get("order") is not None:
        parts.append("order " + " ".join(map(str, spec["order"])))
    return " · ".join(parts)


def candidate_frame(test: Mapping[str, Any], views: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """The candidates of one test output, best first: rank, votes, mean log-prob, shape, right (when the truth is
    known) and the augmentations that voted for it."""
    by_view = {v["view"]: v for v in views}
    truth = test.get("truth")
    rows = []
    for k, c in enumerate(test.get("candidates", []), 1):
        rows.append(
            {
                "rank": k,
                "votes": c["votes"],
                "mean_logprob": c.get("mean_logprob"),
                "shape": shape_text(c["grid"]),
                "right": None if truth is None else same_grid(c["grid"], truth),
                "views": ", ".join(f"{i}: {describe_spec(by_view.get(i, {}).get('spec'))}" for i in c["views"]),
            }
        )
    return pd.DataFrame(rows, columns=["rank", "votes", "mean_logprob", "shape", "right", "views"])


def view_frame(views: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Every view of one test output: its augmentation, tokens, mean log-prob, parsed shape or why unanswered."""
    rows = [
        {
            "view": v["view"],
            "augmentation": describe_spec(v.get("spec")),
            "tokens": v.get("tokens"),
            "mean_logprob": v.get("mean_logprob"),
            "shape": shape_text(v.get("grid")),
            "right": v.get("correct"),
            "unanswered": v.get("reason") if v.get("unanswered") else "",
        }
        for v in sorted(views, key=lambda v: v["view"])
    ]
    return pd.DataFrame(
        rows, columns=["view", "augmentation", "tokens", "mean_logprob", "shape", "right", "unanswered"]
    )


# --------------------------------------------------------------------------- before / after

FLIP_LABELS = {
    (False, True): "unsolved → solved",
    (True, False): "solved → unsolved",
    (True, True): "solved both",
    (False, False): "unsolved both",
}


def flip_frame(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Tasks in both predictions (tasks.jsonl lines): solved before/after, the flip, and val loss before/after."""
    b = {r["task"]: r.get("metrics", {}) for r in before}
    rows = []
    for r in after:
        if r["task"] not in b:
            continue
        mb, ma = b[r["task"]], r.get("metrics", {})
        sb, sa = bool(mb.get("solved")), bool(ma.get("solved"))
        lb, la = mb.get("val_loss"), ma.get("val_loss")
        rows.append(
            {
                "task": r["task"],
                "solved_before": sb,
                "solved_after": sa,
                "flip": FLIP_LABELS[(sb, sa)],
                "loss_before": lb,
                "loss_after": la,
                "loss_change": None if lb is None or la is None else la - lb,
                "pixels_before": mb.get("correct_pixels"),
                "pixels_after": ma.get("correct_pixels"),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "task",
            "solved_before",
            "solved_after",
            "flip",
            "loss_before",
            "loss_after",
            "loss_change",
            "pixels_before",
            "pixels_after",
        ],
    )


def loss_scatter_figure(flips: pd.DataFrame, height: int = 380) -> go.Figure:
    """Val loss per task before (x) against after (y), coloured by flip; below the diagonal = the loss fell."""
    colors = {"unsolved → solved": GREEN, "solved → unsolved": RED, "solved both": BLUE, "unsolved both": GREY}
    d = flips.dropna(subset=["loss_before", "loss_after"])
    fig = go.Figure()
    for label, color in colors.items():
        s = d[d["flip"] == label]
        if len(s):
            fig.add_trace(
                go.Scatter(
                    x=s["loss_before"],
                    y=s["loss_after"],
                    mode="markers",
                    name=label,
                    text=s["task"],
                    marker=dict(color=color, size=9),
                    hovertemplate="%{text}<br>before %{x:.4f}<br>after %{y:.4f}<extra></extra>",
                )
            )
    if len(d):
        lo = float(min(d["loss_before"].min(), d["loss_after"].min()))
        hi = float(max(d["loss_before"].max(), d["loss_after"].max()))
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                name="no change",
                line=dict(color=GREY, dash="dot"),
                hoverinfo="skip",
            )
        )
    else:
        fig.add_annotation(
            text="no task has a val loss in both", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        plot_bgcolor="white",
        xaxis_title="val loss before",
        yaxis_title="val loss after",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    fig.update_xaxes(gridcolor="#EEE")
    fig.update_yaxes(gridcolor="#EEE")
    return fig


# --------------------------------------------------------------------------- training curves


def loss_curve(run_path) -> dict[str, np.ndarray]:
    """A training run's metrics.jsonl as arrays: ``step``/``loss`` (training lines) and ``eval_step``/``eval_loss``
    (evaluation lines). Missing file: empty arrays. Read with :func:`ttft.runs.metrics.read_metrics` (incremental)."""
    from pathlib import Path

    from ttft.runs.metrics import Metrics, read_metrics

    m = read_metrics(Path(run_path) / "metrics.jsonl") if run_path else Metrics()
    step, loss, ev = m.col("step"), m.col("loss"), m.col("eval_loss")
    tr, ok = ~np.isnan(step) & ~np.isnan(loss), ~np.isnan(step) & ~np.isnan(ev)
    return {"step": step[tr], "loss": loss[tr], "eval_step": step[ok], "eval_loss": ev[ok]}


_COLORS = [BLUE, ORANGE, GREEN, RED, "#B10DC9", "#39CCCC", "#85144b", "#3D9970", "#111111", "#FFDC00"]


def loss_curves_figure(
    curves: Mapping[str, Mapping[str, np.ndarray]], log_y: bool = False, height: int = 360
) -> go.Figure:
    """Training loss of one or more runs over their whole length (every logged step), eval loss as diamonds."""
    fig = go.Figure()
    n = 0
    for i, (label, c) in enumerate(curves.items()):
        color = _COLORS[i % len(_COLORS)]
        if len(c["step"]):
            n += len(c["step"])
            fig.add_trace(
                go.Scatter(
                    x=c["step"],
                    y=c["loss"],
                    mode="lines+markers" if len(c["step"]) <= 200 else "lines",
                    name=f"{label} train" if len(curves) > 1 else "train loss",
                    line=dict(color=color, width=1.5),
                    marker=dict(size=4),
                    hovertemplate="step %{x}<br>loss %{y:.4g}<extra></extra>",
                )
            )
        if len(c["eval_step"]):
            n += len(c["eval_step"])
            fig.add_trace(
                go.Scatter(
                    x=c["eval_step"],
                    y=c["eval_loss"],
                    mode="markers",
                    name=f"{label} eval" if len(curves) > 1 else "eval loss",
                    marker=dict(color=color if len(curves) > 1 else ORANGE, size=9, symbol="diamond"),
                    hovertemplate="step %{x}<br>eval loss %{y:.4g}<extra></extra>",
                )
            )
    if not n:
        fig.add_annotation(
            text="no training loss logged (a bare base model has none)",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        plot_bgcolor="white",
        xaxis_title="step",
        yaxis=dict(title="loss", type="log" if log_y else "linear"),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
        hovermode="closest",
    )
    fig.update_xaxes(gridcolor="#EEE")
    fig.update_yaxes(gridcolor="#EEE")
    return fig


def runs_figure(rows: pd.DataFrame, height: int = 380) -> go.Figure:
    """Accuracy and pass@2 (bars, left axis: shares 0-1 shown as percentages) and val loss (diamonds, right axis)
    per prediction; ``rows`` has columns experiment, accuracy, pass_at_2, val_loss (as :func:`compare_frame`).
    The predictions are separate experiments: nothing joins them with a line."""
    x = rows["experiment"].tolist()

    def share(col: str) -> list[float | None]:
        return [None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in rows[col]]

    fig = go.Figure(
        [
            go.Bar(
                x=x,
                y=share("accuracy"),
                name="accuracy",
                marker_color=BLUE,
                hovertemplate="%{x}<br>accuracy %{y:.1%}<extra></extra>",
            ),
            go.Bar(
                x=x,
                y=share("pass_at_2"),
                name="pass@2",
                marker_color=GREEN,
                hovertemplate="%{x}<br>pass@2 %{y:.1%}<extra></extra>",
            ),
            go.Scatter(
                x=x,
                y=rows["val_loss"].tolist(),
                name="val loss",
                yaxis="y2",
                mode="markers",
                marker=dict(color=ORANGE, size=11, symbol="diamond"),
                hovertemplate="%{x}<br>val loss %{y:.4f}<extra></extra>",
            ),
        ]
    )
    fig.update_layout(
        height=height,
        barmode="group",
        margin=dict(l=10, r=10, t=30, b=10),
        plot_bgcolor="white",
        yaxis=dict(title="share of view predictions / tasks", tickformat=".0%", rangemode="tozero", gridcolor="#EEE"),
        yaxis2=dict(title="val loss", overlaying="y", side="right", showgrid=False, rangemode="tozero"),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    return fig


# --------------------------------------------------------------------------- comparing runs


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists as comma-joined text."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = ",".join(map(str, v))
        else:
            out[key] = v
    return out


def config_diff(configs: Mapping[str, Mapping[str, Any]], ignore: Sequence[str] = ()) -> pd.DataFrame:
    """The options whose values differ between configs: one row per option, one column per config label. An option
    only some configs have (a bare model's prediction has no training config; an option added later) is not a
    difference: a row needs two configs that both have the option, with different values (None counts as a
    value: a run against no run). Absent and None values show as '—'."""
    flat = {label: flatten(c) for label, c in configs.items()}
    keys = sorted({k for f in flat.values() for k in f})
    rows = []
    for k in keys:
        if any(k == i or k.startswith(i + ".") for i in ignore):
            continue
        vals = [f.get(k) for f in flat.values()]
        present = {repr(f[k]) for f in flat.values() if k in f}
        if len(present) > 1:
            rows.append({"option": k, **{label: "—" if v is None else str(v) for label, v in zip(flat, vals)}})
    return pd.DataFrame(rows, columns=["option", *configs])


def compare_frame(entries: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The seed experiment's table: experiment, val loss, val accuracy, pass@2 (+ vote_1, tasks, time). Each entry
    has ``label``, ``summary`` (metrics.json summary), ``metrics`` (metrics.json) and ``train_seconds`` (the
    training run's wall time, None for a bare model)."""
    rows = []
    for e in entries:
        s, m, train_s = e.get("summary") or {}, e.get("metrics") or {}, e.get("train_seconds")
        rows.append(
            {
                "experiment": e["label"],
                "val loss": s.get("val_loss"),
                "val accuracy": s.get("accuracy"),
                "pass@2": s.get("pass_at_2"),
                "vote_1": s.get("vote_1"),
                "tasks": s.get("n_tasks"),
                "train time (s)": train_s,
                "predict time (s)": m.get("wall_seconds"),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "experiment",
            "val loss",
            "val accuracy",
            "pass@2",
            "vote_1",
            "tasks",
            "train time (s)",
            "predict time (s)",
        ],
    )
