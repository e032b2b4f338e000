"""Streamlit building blocks of the Predictions page: the run/prediction picker, the task table and task view,
charts, before/after, run comparison and the launch form.

Data comes from :mod:`ttft.predict` (prediction folders) and pictures/tables from :mod:`ttft.predviz`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from ttft.core.metrics import as_grid, same_grid
from ttft.engine.commands import launch_prediction
from ttft.engine.predict import BASELINES_DIR
from ttft.engine.predict_config import PredictConfig
from ttft.options import ConfigError
from ttft.runs.predictions import PredictionRef, find_predictions, read_prediction
from ttft.runs.rundir import read_json, runs_root
from ttft.ui import forms
from ttft.ui import widgets as w
from ttft.views import predviz as pv

PCT = st.column_config.NumberColumn(format="percent")
LOSS = st.column_config.NumberColumn(format="%.4f")
SECS = st.column_config.NumberColumn(format="%.1f")
_pct = lambda label, help: st.column_config.NumberColumn(label, format="percent", help=help)  # noqa: E731
TASK_COLUMNS = {
    "pass_at_2": _pct("pass@2", "right within the two voted attempts"),
    "vote_1": _pct("vote_1", "attempt 1 is right"),
    "accuracy": _pct("accuracy", "share of view predictions exactly right"),
    "correct_pixels": _pct("pixels", "share of cells right when the shape matches, else 0 (mean over views)"),
    "correct_size": _pct("size", "share of views with the truth's shape"),
    "size_match": st.column_config.CheckboxColumn("size ok", help="attempt 1 has the truth's shape"),
    "unanswered": _pct("unanswered", "share of views that could not be parsed"),
    "val_loss": st.column_config.NumberColumn("val loss", format="%.4f", help="mean loss on the test-output tokens"),
    "n_test": st.column_config.NumberColumn("tests"),
    "top_votes": st.column_config.NumberColumn("top votes", help="votes of attempt 1 (first test)"),
}


# --------------------------------------------------------------------------- reading (cached on file mtimes)


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_data(max_entries=64, show_spinner=False)
def _tasks(path: str, mtime: float) -> list[dict]:
    return read_prediction(path).tasks()


@st.cache_data(max_entries=16, show_spinner=False)
def _views(path: str, mtime: float) -> dict[tuple[str, int], list[dict]]:
    out: dict[tuple[str, int], list[dict]] = {}
    for v in read_prediction(path).views():
        out.setdefault((v["task"], v["test_index"]), []).append(v)
    return out


def tasks_of(ref: PredictionRef) -> list[dict]:
    return _tasks(str(ref.path), _mtime(ref.path / "tasks.jsonl"))


def views_of(ref: PredictionRef) -> dict[tuple[str, int], list[dict]]:
    return _views(str(ref.path), _mtime(ref.path / "predictions.jsonl"))


@st.cache_data(max_entries=32, show_spinner=False)
def _curve(run: str, mtime: float) -> dict:
    return pv.loss_curve(run)


def curve_of(ref: PredictionRef) -> dict:
    run = ref.source_run
    return _curve(str(run) if run else "", _mtime(run / "metrics.jsonl") if run else 0)


@st.cache_data(max_entries=4000, show_spinner=False)
def _diff_png(pred: bytes, pshape: tuple, truth: bytes, tshape: tuple) -> bytes:
    p = np.frombuffer(pred, dtype=np.uint8).reshape(pshape)
    t = np.frombuffer(truth, dtype=np.uint8).reshape(tshape)
    return pv.diff_png(p, t)


def diff_image(pred, truth, caption: str | None = None) -> None:
    p, t = as_grid(pred), as_grid(truth)
    st.image(_diff_png(p.tobytes(), p.shape, t.tobytes(), t.shape), caption=caption, output_format="PNG")


def all_predictions() -> list[PredictionRef]:
    return find_predictions(runs_root())


# --------------------------------------------------------------------------- picker


def picker(refs: list[PredictionRef]) -> PredictionRef | None:
    """Run and prediction selectboxes in the sidebar, mirrored in ``?run=`` and ``?pred=`` (the URL wins)."""
    runs = list(dict.fromkeys(r.run_key for r in refs))
    qrun, qpred = w.query_param("run"), w.query_param("pred")
    if qrun is not None and qrun not in runs:
        st.error(f"No predictions of run {qrun!r} in {runs_root()}.")
        qrun = qpred = None
    if qrun is not None:
        st.session_state["pred_run"] = qrun
    elif st.session_state.get("pred_run") not in runs:
        st.session_state["pred_run"] = runs[0]

    def on_run() -> None:
        w.set_query_params(run=st.session_state["pred_run"], pred=None, task=None)

    run = st.sidebar.selectbox("Run", runs, key="pred_run", on_change=on_run,
                               help=f"Runs with predictions in {runs_root()} (TTFT_RUNS_DIR)")
    mine = [r for r in refs if r.run_key == run]
    names = [r.name for r in mine]
    if qpred is not None and qpred in names:
        st.session_state["pred_name"] = qpred
    elif st.session_state.get("pred_name") not in names:
        st.session_state["pred_name"] = names[0]
    name = st.sidebar.selectbox("Prediction", names, key="pred_name",
                                on_change=lambda: w.set_query_params(pred=st.session_state["pred_name"], task=None),
                                format_func=lambda n: f"{n} ({next(r.state for r in mine if r.name == n)})")
    w.set_query_params(run=run, pred=name)
    return next(r for r in mine if r.name == name)


def caption(ref: PredictionRef) -> str:
    c = ref.config
    src = c.get("source") or {}
    kinds = {"adapter": "adapter", "per-task": "per-task adapters", "full": "full fine-tune"}
    what = f"base model {src.get('model', {}).get('base_model')}" if src.get("kind") == "base" else \
        f"{kinds.get(src.get('kind'), src.get('kind'))} of run {ref.run_key}"
    sampled = "sampled" if c.get("sample") else "greedy"
    return (f"{what} · {c.get('dataset')} · {len(c.get('tasks', []))} tasks · {c.get('views')} views, {sampled} · "
            f"{ref.state}")


def summary(ref: PredictionRef) -> None:
    s = ref.summary()
    m = ref.metrics()

    def pct(k):
        return "—" if s.get(k) is None else f"{100 * s[k]:.1f}%"

    cols = st.columns(8)
    cols[0].metric("tasks", f"{s.get('n_tasks', 0)}", help="tasks predicted (scored: with known test outputs)")
    cols[1].metric("solved", f"{s.get('solved', 0)}", help="tasks whose every test output is right within 2 attempts")
    cols[2].metric("pass@2", pct("pass_at_2"), help="right within the top-2 voted grids (vote_2), mean over tasks")
    cols[3].metric("vote_1", pct("vote_1"), help="the most voted grid is right")
    cols[4].metric("accuracy", pct("accuracy"), help="share of the view predictions exactly right")
    cols[5].metric("pixels", pct("correct_pixels"), help="share of cells right when the shape matches, else 0")
    cols[6].metric("unanswered", pct("unanswered"), help="share of views whose output could not be parsed")
    cols[7].metric("val loss", "—" if s.get("val_loss") is None else f"{s['val_loss']:.4f}",
                   help="mean loss on the test-output tokens")
    if m.get("predictions_per_second"):
        st.caption(f"{m.get('n_predictions')} view predictions at {m['predictions_per_second']:.1f}/s · "
                   f"{m.get('wall_seconds', 0):.1f} s in all")
    if ref.state in ("running", "lost", "failed", "stopped"):
        st.warning(f"This prediction is {ref.state}: {ref.status.get('done', 0)}/{ref.status.get('total', '?')} "
                   f"tasks done. {ref.status.get('error') or ''}")
        if ref.state == "running":
            st.button("Refresh", key="pred_refresh", icon=":material/refresh:")


# --------------------------------------------------------------------------- task table


def open_task(tid: str | None) -> None:
    w.set_query_params(task=tid)


def task_table(ref: PredictionRef) -> None:
    df = pv.task_frame(tasks_of(ref))
    if df.empty:
        st.info("No task is done yet.")
        return
    f = st.columns([2, 2, 2, 3, 2], vertical_alignment="bottom")
    solved = f[0].selectbox("Solved", ["all", "solved", "unsolved"], key="pred_f_solved")
    size = f[1].selectbox("Size of attempt 1", ["all", "match", "mismatch"], key="pred_f_size")
    pix = f[2].slider("Pixel accuracy ≥", 0.0, 1.0, 0.0, 0.05, key="pred_f_pixels")
    losses = df["val_loss"].dropna()
    loss = None
    if len(losses) and losses.max() > losses.min():
        lo, hi = float(losses.min()), float(losses.max())
        rng = f[3].slider("Val loss", lo, hi, (lo, hi), key="pred_f_loss")
        loss = None if rng == (lo, hi) else rng
    text = f[4].text_input("Task id contains", key="pred_f_text")
    shown = pv.filter_tasks(df, solved, pix, loss, size, text)
    st.caption(f"{len(shown)} of {len(df)} tasks · click a row to open the task, or a column header to sort")
    ev = st.dataframe(shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                      key="pred_table", column_config=TASK_COLUMNS)
    rows = ev.selection.rows if ev is not None and hasattr(ev, "selection") else []
    if rows:
        open_task(shown.iloc[rows[0]]["task"])
        st.rerun()
    c = st.columns([3, 1], vertical_alignment="bottom")
    tid = c[0].selectbox("Open a task", shown["task"].tolist(), key="pred_open", index=None,
                         placeholder="task id…")
    c[1].button("Open", key="pred_open_btn", on_click=open_task, args=(tid,), disabled=tid is None)


# --------------------------------------------------------------------------- task view


def _badges(att, truth) -> None:
    if att is None:
        st.badge("no attempt", color="gray")
        return
    if truth is None:
        return
    if same_grid(att, truth):
        st.badge("right", icon=":material/check:", color="green")
        return
    st.badge("wrong", icon=":material/close:", color="red")
    if as_grid(att).shape != as_grid(truth).shape:
        st.badge(f"shape mismatch: {pv.shape_text(att)} vs {pv.shape_text(truth)}", icon=":material/aspect_ratio:",
                 color="orange")


def task_view(ref: PredictionRef, task_id: str, numbers: bool = False) -> None:
    rows = tasks_of(ref)
    ids = [r["task"] for r in rows]
    r = next((x for x in rows if x["task"] == task_id), None)
    if r is None:
        st.error(f"Task {task_id!r} is not in prediction {ref.label}.")
        st.button("← All tasks", on_click=open_task, args=(None,), key="to_table")
        return
    k = ids.index(task_id)
    top = st.columns([6, 1, 1, 1], vertical_alignment="bottom")
    top[0].title(f"Task {task_id}")
    top[1].button("← All tasks", on_click=open_task, args=(None,), key="to_table")
    top[2].button("◀ Prev", on_click=open_task, args=(ids[k - 1] if k else None,), disabled=k == 0, key="prev")
    top[3].button("Next ▶", on_click=open_task, args=(ids[k + 1] if k + 1 < len(ids) else None,),
                  disabled=k + 1 >= len(ids), key="next")
    m = r["metrics"]

    def pct(key):
        return "—" if m.get(key) is None else f"{100 * m[key]:.0f}%"

    vl = "—" if m.get("val_loss") is None else f"{m['val_loss']:.4f}"
    st.caption(f"{ref.label} · {k + 1} of {len(ids)} · {'solved' if m.get('solved') else 'not solved'} · pass@2 "
               f"{pct('pass_at_2')} · accuracy {pct('accuracy')} · pixels {pct('correct_pixels')} · unanswered "
               f"{pct('unanswered')} · val loss {vl}" + (f" · adapter {r['adapter']}" if r.get("adapter") else ""))
    views = views_of(ref)
    for t in r["tests"]:
        i, truth = t["test_index"], t.get("truth")
        st.subheader(f"Test {i + 1}")
        cols = st.columns(4, gap="medium")
        inp = as_grid(t["input"])
        cols[0].markdown(f"**Test input** · {pv.shape_text(inp)}")
        with cols[0]:
            w.grid_image(inp, numbers=numbers)
        cols[1].markdown(f"**Truth** · {pv.shape_text(truth)}" if truth is not None else "**Truth** · hidden")
        if truth is not None:
            with cols[1]:
                w.grid_image(as_grid(truth), numbers=numbers)
        cands = t.get("candidates", [])
        for a in range(2):
            att = t["attempts"][a] if a < len(t["attempts"]) else None
            with cols[2 + a]:
                votes = f" · {cands[a]['votes']} of {t['n_views']} votes" if a < len(cands) else ""
                st.markdown(f"**Attempt {a + 1}** · {pv.shape_text(att)}{votes}")
                if att is not None:
                    w.grid_image(as_grid(att), numbers=numbers)
                _badges(att, truth)
                if att is not None and truth is not None and not same_grid(att, truth):
                    diff_image(att, truth, caption="wrong or missing cells crossed")
        st.markdown("**Candidates** (votes over the views, mean log-prob of the generated tokens)")
        st.dataframe(pv.candidate_frame(t, views.get((task_id, i), [])), hide_index=True, width="stretch",
                     column_config={"mean_logprob": st.column_config.NumberColumn(format="%.4f")})
        with st.expander(f"Every view ({t['n_views']})"):
            st.dataframe(pv.view_frame(views.get((task_id, i), [])), hide_index=True, width="stretch")


# --------------------------------------------------------------------------- charts, before/after, compare


def _entry(ref: PredictionRef) -> dict:
    run = ref.source_run
    st_ = (read_json(run / "status.json") or {}) if run else {}
    train_s = st_["ended"] - st_["started"] if isinstance(st_.get("ended"), (int, float)) and isinstance(
        st_.get("started"), (int, float)) else None
    return {"label": ref.label, "summary": ref.summary(), "metrics": ref.metrics(), "train_seconds": train_s}


def charts(ref: PredictionRef, refs: list[PredictionRef]) -> None:
    st.subheader("Training loss of the run")
    log_y = st.toggle("Log scale", key="pred_log_y")
    st.plotly_chart(pv.loss_curves_figure({ref.run_key: curve_of(ref)}, log_y=log_y), key="pred_loss_fig")
    st.subheader("Accuracy and val loss per prediction")
    same = [r for r in refs if r.config.get("dataset") == ref.config.get("dataset")][:20]
    st.caption(f"The {len(same)} newest predictions on {ref.config.get('dataset')}")
    st.plotly_chart(pv.runs_figure(pv.compare_frame([_entry(r) for r in reversed(same)]).rename(
        columns={"val accuracy": "accuracy", "pass@2": "pass_at_2", "val loss": "val_loss"})), key="pred_runs_fig")


def before_after(ref: PredictionRef, refs: list[PredictionRef]) -> None:
    labels = [r.label for r in refs]
    base = next((r for r in refs if r.run_key.startswith(BASELINES_DIR) or
                 (r.config.get("source") or {}).get("kind") == "base"), None)
    c = st.columns(2)
    b = c[0].selectbox("Before (e.g. the bare base model)", labels, key="pred_before",
                       index=labels.index(base.label) if base else min(1, len(labels) - 1))
    a = c[1].selectbox("After (e.g. a TTFT run)", labels, key="pred_after", index=labels.index(ref.label))
    rb, ra = refs[labels.index(b)], refs[labels.index(a)]
    df = pv.flip_frame(tasks_of(rb), tasks_of(ra))
    if df.empty:
        st.info("These two predictions have no task in common.")
        return
    counts = df["flip"].value_counts()
    m = st.columns(4)
    for col, label in zip(m, pv.FLIP_LABELS.values()):
        col.metric(label, int(counts.get(label, 0)))
    flipped = df[df["flip"].isin(["unsolved → solved", "solved → unsolved"])]
    st.markdown(f"**Flipped tasks** ({len(flipped)})")
    cc = {"loss_before": LOSS, "loss_after": LOSS, "loss_change": LOSS, "pixels_before": PCT, "pixels_after": PCT}
    st.dataframe(flipped, hide_index=True, width="stretch", column_config=cc)
    st.plotly_chart(pv.loss_scatter_figure(df), key="pred_scatter")
    with st.expander(f"All {len(df)} tasks in both"):
        st.dataframe(df, hide_index=True, width="stretch", column_config=cc)


def compare(ref: PredictionRef, refs: list[PredictionRef]) -> None:
    labels = [r.label for r in refs]
    default = [ref.label] + [r.label for r in refs if r is not ref and
                             r.config.get("dataset") == ref.config.get("dataset")][:3]
    chosen = st.multiselect("Predictions to compare", labels, default=default, key="pred_compare")
    sel = [refs[labels.index(x)] for x in chosen]
    if not sel:
        st.info("Pick predictions to compare.")
        return
    st.dataframe(pv.compare_frame([_entry(r) for r in sel]), hide_index=True, width="stretch",
                 column_config={"val loss": LOSS, "val accuracy": PCT, "pass@2": PCT, "vote_1": PCT,
                                "train time (s)": SECS, "predict time (s)": SECS})
    cfgs = {}
    for r in sel:
        run = r.source_run
        train = (read_json(run / "config.json") or {}) if run else {}
        cfgs[r.label] = {"predict": {k: v for k, v in r.config.items() if k not in ("source", "tasks")},
                         "train": train}
    diff = pv.config_diff(cfgs, ignore=("predict.out", "predict.name", "train.tasks"))
    st.markdown(f"**Config differences** ({len(diff)} options)")
    st.dataframe(diff, hide_index=True, width="stretch")
    curves = {r.label: curve_of(r) for r in sel}
    st.plotly_chart(pv.loss_curves_figure(curves), key="pred_compare_fig")


# --------------------------------------------------------------------------- launch


def launch_form(ref: PredictionRef | None) -> None:
    """A new prediction: the model (this prediction's run, or a base model) and every prediction option, generated
    from PredictConfig; validated before it is queued."""
    st.markdown("Predict in the background (a `python -m ttft predict` job; it keeps running when the tab closes).")
    run = str(ref.source_run) if ref is not None and ref.source_run else ""
    src = st.radio("Model", ["this run", "a base model"] if run else ["a base model"], horizontal=True,
                   key="pred_l_src")
    base = ""
    if src == "a base model":
        base = st.text_input("Base model", "default", key="pred_l_base",
                             help=PredictConfig.HELP["base_model"]).strip()
    initial = PredictConfig(base_model="default",  # (the source is chosen above; the form hides it)
                            dataset=(ref.config.get("dataset") if ref else None) or "arc-agi-1/evaluation")
    form = forms.config_form(PredictConfig, "pred_l", order=("Tasks", "Views", "Decoding", "Hardware", "Output"),
                             hide=("run", "base_model", "out"), initial=initial.to_json())
    source = {"run": run or None} if src == "this run" else {"base_model": base or None}
    cfg, error = forms.read_config(PredictConfig, form, base={**PredictConfig().to_json(), **source})
    if cfg is None:
        st.error(error)
    if st.button("Launch prediction", type="primary", disabled=cfg is None, key="pred_l_go"):
        try:
            res = launch_prediction(cfg)
        except (ConfigError, OSError) as e:
            st.error(f"Not launched: {e}")
            return
        st.success(f"Launched{' job ' + res['job'] if res.get('job') else ''}: writing {res['out']}")
        st.code("python -m ttft " + " ".join(res["argv"]), language="bash")
