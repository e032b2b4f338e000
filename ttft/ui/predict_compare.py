"""Predictions against each other: the run's training curve and the per-prediction chart, before/after flips, and
the run comparison (its table, only the options that differ, overlaid loss curves)."""

from __future__ import annotations

import streamlit as st

from ttft.engine.predict import BASELINES_DIR
from ttft.runs.predictions import PredictionRef
from ttft.runs.rundir import read_json
from ttft.ui import predict_widgets as pw
from ttft.views import predviz as pv


def _entry(ref: PredictionRef) -> dict:
    run = ref.source_run
    st_ = (read_json(run / "status.json") or {}) if run else {}
    train_s = (
        st_["ended"] - st_["started"]
        if isinstance(st_.get("ended"), (int, float)) and isinstance(st_.get("started"), (int, float))
        else None
    )
    return {"label": ref.label, "summary": ref.summary(), "metrics": ref.metrics(), "train_seconds": train_s}


def _written(refs: list[PredictionRef]) -> list[PredictionRef]:
    return [r for r in refs if not r.pending]


def charts(ref: PredictionRef, refs: list[PredictionRef]) -> None:
    st.subheader("Training loss of the run")
    log_y = st.toggle("Log scale", key="pred_log_y")
    st.plotly_chart(pv.loss_curves_figure({ref.run_key: pw.curve_of(ref)}, log_y=log_y), key="pred_loss_fig")
    st.subheader("Accuracy and val loss per prediction")
    same = [r for r in _written(refs) if r.config.get("dataset") == ref.config.get("dataset")][:20]
    st.caption(
        f"The {len(same)} newest predictions on {ref.config.get('dataset')}, oldest first (separate "
        "predictions: bars and points, no line between them)"
    )
    st.plotly_chart(
        pv.runs_figure(
            pv.compare_frame([_entry(r) for r in reversed(same)]).rename(
                columns={"val accuracy": "accuracy", "pass@2": "pass_at_2", "val loss": "val_loss"}
            )
        ),
        key="pred_runs_fig",
    )


def before_after(ref: PredictionRef, refs: list[PredictionRef]) -> None:
    refs = _written(refs)
    labels = [r.label for r in refs]
    if ref.label not in labels:
        st.info("This prediction has no tasks yet.")
        return
    base = next(
        (r for r in refs if r.run_key.startswith(BASELINES_DIR) or r.source.get("kind") == "base"),
        None,
    )
    c = st.columns(2)
    b = c[0].selectbox(
        "Before (e.g. the bare base model)",
        labels,
        key="pred_before",
        index=labels.index(base.label) if base else min(1, len(labels) - 1),
    )
    a = c[1].selectbox("After (e.g. a TTFT run)", labels, key="pred_after", index=labels.index(ref.label))
    rb, ra = refs[labels.index(b)], refs[labels.index(a)]
    df = pv.flip_frame(pw.tasks_of(rb), pw.tasks_of(ra))
    if df.empty:
        st.info("These two predictions have no task in common.")
        return
    counts = df["flip"].value_counts()
    m = st.columns(4)
    for col, label in zip(m, pv.FLIP_LABELS.values()):
        col.metric(label, int(counts.get(label, 0)))
    flipped = df[df["flip"].isin(["unsolved → solved", "solved → unsolved"])]
    st.markdown(f"**Flipped tasks** ({len(flipped)})")
    cc = {
        "loss_before": pw.LOSS,
        "loss_after": pw.LOSS,
        "loss_change": pw.LOSS,
        "pixels_before": pw.PCT,
        "pixels_after": pw.PCT,
    }
    st.dataframe(flipped, hide_index=True, width="stretch", column_config=cc)
    st.plotly_chart(pv.loss_scatter_figure(df), key="pred_scatter")
    with st.expander(f"All {len(df)} tasks in both"):
        st.dataframe(df, hide_index=True, width="stretch", column_config=cc)


#: options that differ between any two predictions by construction (their folder, name, resolved task list)
IGNORED = ("predict.out", "predict.name", "train.tasks", "train.run_dir")


def compare(ref: PredictionRef, refs: list[PredictionRef]) -> None:
    refs = _written(refs)
    labels = [r.label for r in refs]
    default = ([ref.label] if ref.label in labels else []) + [
        r.label for r in refs if r.path != ref.path and r.config.get("dataset") == ref.config.get("dataset")
    ][:3]
    chosen = st.multiselect("Predictions to compare", labels, default=default, key="pred_compare")
    sel = [refs[labels.index(x)] for x in chosen]
    if not sel:
        st.info("Pick predictions to compare.")
        return
    st.dataframe(
        pv.compare_frame([_entry(r) for r in sel]),
        hide_index=True,
        width="stretch",
        column_config={
            "val loss": pw.LOSS,
            "val accuracy": pw.PCT,
            "pass@2": pw.PCT,
            "vote_1": pw.PCT,
            "train time (s)": pw.SECS,
            "predict time (s)": pw.SECS,
        },
    )
    cfgs = {}
    for r in sel:
        run = r.source_run
        train = (read_json(run / "config.json") or {}) if run else {}
        cfgs[r.label] = {"predict": {k: v for k, v in r.config.items() if k not in ("source", "tasks")}, "train": train}
    diff = pv.config_diff(cfgs, ignore=IGNORED)
    if len(sel) < 2:
        st.caption("Pick a second prediction to see the options that differ.")
    elif diff.empty:
        st.markdown("**Config differences**: none (the same options)")
    else:
        st.markdown(f"**Config differences** ({len(diff)} options differ)")
        st.caption(
            "Only options that two of them set to different values; options one of them lacks (a bare "
            "model has no training config) are left out. '—': not set."
        )
        st.dataframe(diff, hide_index=True, width="stretch")
    curves = {r.label: pw.curve_of(r) for r in sel}
    st.plotly_chart(pv.loss_curves_figure(curves), key="pred_compare_fig")
