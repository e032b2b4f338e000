"""Streamlit building blocks of the Predictions page: reading prediction folders (cached on file mtimes), the
run/prediction picker, the status with live progress and Stop, the summary, the downloads and the task table.

The task view is :mod:`ttft.ui.predict_task_view`, charts / before-after / comparison :mod:`ttft.ui.predict_compare`,
the New-prediction form :mod:`ttft.ui.predict_launch`. Data comes from :mod:`ttft.runs.predictions` (prediction
folders, and the prediction jobs that have not written theirs yet), pictures and tables from :mod:`ttft.views.predviz`.

Refreshing: while a prediction is queued, running or stopping, the status, summary and task table redraw themselves
every :data:`LIVE_S` seconds (a fragment), and the whole page reruns when a prediction starts, ends or appears. When
nothing is live nothing reruns by itself (an idle tab costs nothing); **Refresh** rereads the folders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from ttft.core.metrics import as_grid
from ttft.runs import jobs, registry
from ttft.runs.predictions import PredictionRef, find_predictions, partial_submission, read_prediction
from ttft.runs.rundir import runs_root
from ttft.ui import widgets as w
from ttft.views import predviz as pv

#: seconds between redraws of the live parts while a prediction is active
LIVE_S = 2.0
#: a Stop sends SIGTERM (the prediction ends after its current batch); SIGKILL only after this many seconds
STOP_TIMEOUT_S = 300.0

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
#: plain-text state labels (no emoji font needed)
STATE_TEXT = {
    "queued": "queued",
    "running": "running",
    "stopping": "stopping",
    "stopped": "stopped",
    "finished": "finished",
    "failed": "failed",
    "lost": "lost",
    "corrupt": "corrupt",
}


# --------------------------------------------------------------------------- reading (cached on file mtimes)


def _mtime(p: Path) -> float:
    try:
        s = p.stat()
        return s.st_mtime_ns + s.st_size
    except OSError:
        return 0


#: a file's cache key: its mtime (ns) + size, 0 when missing
mtime_of = _mtime


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


def diff_png_of(pred, truth) -> bytes:
    p, t = as_grid(pred), as_grid(truth)
    return _diff_png(p.tobytes(), p.shape, t.tobytes(), t.shape)


def diff_image(pred, truth, caption: str | None = None) -> None:
    st.image(diff_png_of(pred, truth), caption=caption, output_format="PNG")


def all_predictions() -> list[PredictionRef]:
    """Every prediction folder in the runs folder, and the prediction jobs that have not written theirs yet."""
    return find_predictions(runs_root(), jobs=True)


def reread(ref: PredictionRef) -> PredictionRef:
    """The same prediction as it is now (a pending job's folder may have appeared since)."""
    if (ref.path / "config.json").exists():
        return read_prediction(ref.path, runs_root())
    return next((r for r in all_predictions() if r.path == ref.path), ref)


# --------------------------------------------------------------------------- picker


def _key_of(qrun: str, runs: list[str]) -> str:
    """A ``run`` query parameter as a run key: keys as they are, a folder path relative to the runs folder."""
    if qrun in runs:
        return qrun
    p = Path(qrun).expanduser()
    try:
        rel = p.resolve().relative_to(runs_root().resolve()).as_posix()
    except (ValueError, OSError):
        return qrun
    return rel if rel in runs else qrun


def picker(refs: list[PredictionRef]) -> PredictionRef | None:
    """Run and prediction selectboxes in the sidebar, mirrored in ``?run=`` and ``?pred=`` (the URL wins). Opened
    with ``?dataset=…&task=…`` and no run, the newest prediction holding that task is chosen."""
    runs = list(dict.fromkeys(r.run_key for r in refs))
    qrun, qpred = w.query_param("run"), w.query_param("pred")
    qtask, qds = w.query_param("task"), w.query_param("dataset")
    if qrun is not None:
        qrun = _key_of(qrun, runs)
    if qrun is not None and qrun not in runs:
        st.error(f"No predictions of run {qrun!r} in {runs_root()}.")
        st.page_link(
            "pages/4_Predictions.py",
            label="Predict this run",
            icon=":material/add:",
            query_params={"run": qrun, "new": "1"},
        )
        qrun = qpred = None
    if qrun is None and qtask and "pred_run" not in st.session_state:
        hit = next(
            (r for r in refs if qtask in (r.config.get("tasks") or ()) and (not qds or r.config.get("dataset") == qds)),
            None,
        )
        if hit is not None:
            qrun, qpred = hit.run_key, hit.name
    if qrun is not None:
        st.session_state["pred_run"] = qrun
    elif st.session_state.get("pred_run") not in runs:
        st.session_state["pred_run"] = runs[0]

    def on_run() -> None:
        w.set_query_params(run=st.session_state["pred_run"], pred=None, task=None)

    run = st.sidebar.selectbox(
        "Run", runs, key="pred_run", on_change=on_run, help=f"Runs with predictions in {runs_root()} (TTFT_RUNS_DIR)"
    )
    mine = [r for r in refs if r.run_key == run]
    names = [r.name for r in mine]
    if qpred is not None and qpred in names:
        st.session_state["pred_name"] = qpred
    elif st.session_state.get("pred_name") not in names:
        st.session_state["pred_name"] = names[0]
    states = {r.name: r.state for r in mine}
    # the options are the names alone: a label that changes while the widget lives (the state of a running
    # prediction) no longer matches what the browser sends back, and the widget's value becomes that stale label
    name = st.sidebar.selectbox(
        "Prediction",
        names,
        key="pred_name",
        on_change=lambda: w.set_query_params(pred=st.session_state["pred_name"], task=None),
    )
    if name not in names:
        name = names[0]
    st.sidebar.caption(STATE_TEXT.get(states.get(name), states.get(name)) or "")
    w.set_query_params(run=run, pred=name)
    return next(r for r in mine if r.name == name)


def caption(ref: PredictionRef) -> str:
    c = ref.config
    src = ref.source
    kinds = {"adapter": "adapter", "per-task": "per-task adapters", "full": "full fine-tune"}
    if src.get("kind") == "base" or (not src and c.get("base_model")):
        what = f"base model {src.get('model', {}).get('base_model') or c.get('base_model')}"
    elif src:
        what = f"{kinds.get(src.get('kind'), src.get('kind'))} of run {ref.run_key}"
    else:
        what = f"run {c.get('run') or ref.run_key}"
    sampled = "sampled" if c.get("sample") else "greedy"
    n = len(c.get("tasks") or []) or "the run's / every"
    return (
        f"{what} · {c.get('dataset') or 'the run’s dataset'} · {n} tasks · {c.get('views')} views, {sampled} · "
        f"{STATE_TEXT.get(ref.state, ref.state)}"
    )


# --------------------------------------------------------------------------- status, progress, stop


def _dur(s: float | None) -> str:
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


def progress_text(ref: PredictionRef, n_done: int | None = None) -> str:
    """Tasks and views done, time so far and an estimate of the time left (plain text)."""
    p = ref.progress(n_done)
    if ref.pending and ref.state == "running":
        return "starting: checking the options, loading the dataset and the model"
    parts = [f"{p.done}/{p.total if p.total is not None else '?'} tasks"]
    if p.views_total:
        parts.append(f"{p.views_done or 0}/{p.views_total} views")
    if p.elapsed_s is not None:
        parts.append(f"{_dur(p.elapsed_s)} so far" if ref.live else f"{_dur(p.elapsed_s)} in all")
    if p.eta_s is not None:
        parts.append(f"about {_dur(p.eta_s)} left")
    return " · ".join(parts)


def _stop(target: str, label: str) -> None:
    cfg = registry.JobConfig.from_env()
    try:
        before = registry.get_job(target, cfg.root).status
        jobs.stop(target, cfg, wait=False, timeout=max(STOP_TIMEOUT_S, cfg.stop_timeout_s))
    except (registry.JobError, OSError) as e:
        st.session_state["_pred_msg"] = ("error", f"Could not stop {label}: {e}")
        return
    if before == "queued":
        msg = f"Took {label} out of the queue: it never starts."
    else:
        msg = (
            f"Stopping {label}: it finishes its current batch and ends 'stopped', keeping the tasks done "
            "(their metrics and submission)."
        )
    st.session_state["_pred_msg"] = ("info", msg)


def show_message() -> None:
    msg = st.session_state.pop("_pred_msg", None)
    if msg:
        getattr(st, msg[0])(msg[1])


def _job_stderr(ref: PredictionRef, n: int = 3000) -> str:
    if ref.job is None:
        return ""
    try:
        return (ref.job / "stderr.txt").read_text(errors="replace")[-n:]
    except OSError:
        return ""


def status(ref: PredictionRef, n_done: int | None = None) -> None:
    """The prediction's state, honestly: queued (position), running with progress and Stop, stopping, stopped
    (the tasks kept), failed (the error, its traceback or the job's stderr), lost, or finished."""
    s = ref.state
    text = progress_text(ref, n_done)
    label = f"{ref.label}"
    if s in ("running", "stopping", "queued"):
        c = st.columns([5, 1], vertical_alignment="center")
        if s == "queued":
            pos = ref.status.get("position")
            c[0].info(
                f"Queued{f' (position {pos})' if pos else ''}: waits for a free slot; it is listed here and "
                "starts by itself."
            )
        else:
            frac = ref.progress(n_done).fraction
            c[0].progress(
                frac, text=("Stopping after the current batch · " if s == "stopping" else "Running · ") + text
            )
        c[1].button(
            "Stop",
            key="pred_stop",
            on_click=_stop,
            args=(str(ref.stop_target), label),
            disabled=s == "stopping",
            help="SIGTERM: it ends after the current batch, keeping the tasks done",
        )
    elif s == "failed":
        st.error(f"This prediction failed: {ref.error or 'no error recorded'}")
        tb = ref.status.get("traceback") or _job_stderr(ref)
        if tb:
            with st.expander("Traceback / stderr"):
                st.code(tb, language=None)
    elif s == "lost":
        st.warning(
            f"This prediction is lost: {ref.status.get('note') or 'its process ended without a final status'}"
            f" (killed, out of memory, or the machine restarted). {text}; the tasks written are shown."
        )
    elif s == "stopped":
        st.info(
            f"Stopped: {text}. The tasks done are kept; the metrics and the submission cover them "
            f"{'(the rest are [[0]] in submission.json)' if (ref.path / 'submission.json').exists() else ''}"
            + (f" · {ref.status['note']}" if ref.status.get("note") else "")
        )
    elif s == "finished":
        st.caption(f"Finished · {text}")
    elif s == "corrupt":
        st.error(
            f"This prediction is corrupt: {ref.problem}. What can be read of it is shown; repair the file or "
            f"delete the folder {ref.path}."
        )


def other_live(refs: list[PredictionRef], ref: PredictionRef) -> None:
    """The other predictions still live, each with its progress and a button to open it."""
    for r in refs:
        if r.live and r.path != ref.path:
            c = st.columns([5, 1], vertical_alignment="center")
            c[0].caption(f"Also {STATE_TEXT.get(r.state, r.state)}: {r.label} · {progress_text(r)}")
            c[1].button(
                "Open",
                key=f"pred_open_live_{r.label}",
                on_click=w.set_query_params,
                kwargs={"run": r.run_key, "pred": r.name, "task": None},
            )


def live_signature(refs: list[PredictionRef]) -> tuple:
    """What a full rerun depends on: the predictions listed, their states and whether their folder exists."""
    return tuple((r.label, r.state, r.pending) for r in refs)


def live_block(ref: PredictionRef, refs: list[PredictionRef], draw, key: str, watch_all: bool = True) -> None:
    """``draw(ref, refs)`` once, or, while any prediction is live, every :data:`LIVE_S` s in a fragment. With
    ``watch_all`` the fragment lists the predictions again and reruns the whole page when one starts, ends or
    appears; else it rereads only ``ref``."""
    if not any(r.live for r in refs):
        draw(ref, refs)
        return
    sig = live_signature(refs)
    flag = f"_pred_live_{key}"

    @st.fragment(run_every=LIVE_S)
    def _live() -> None:
        cur, cur_refs = ref, refs
        if st.session_state.get(flag) == sig:  # a rerun of the fragment alone: read the folders again
            from ttft.ui.jobs_widgets import cheap_reruns

            cheap_reruns()
            if watch_all:
                cur_refs = all_predictions()
                if live_signature(cur_refs) != sig:
                    st.rerun(scope="app")
                cur = next((r for r in cur_refs if r.path == ref.path), ref)
            else:
                cur = reread(ref)
        draw(cur, cur_refs)

    st.session_state[flag] = None  # the full run draws what it has just read
    _live()
    st.session_state[flag] = sig


def refresh_button() -> None:
    st.button(
        "Refresh",
        key="pred_refresh",
        help="Read the runs folder again (the page refreshes by itself only while a prediction is live)",
    )


# --------------------------------------------------------------------------- summary and downloads


def summary_of(ref: PredictionRef) -> dict:
    """metrics.json's summary, or (while it runs, or when it ended without one) the mean over the tasks done."""
    return ref.summary()


def summary(ref: PredictionRef) -> None:
    m = ref.metrics()
    s = summary_of(ref)

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
    cols[7].metric(
        "val loss",
        "—" if s.get("val_loss") is None else f"{s['val_loss']:.4f}",
        help="mean loss on the test-output tokens",
    )
    if s.get("skipped_lines"):
        st.caption(f"{s['skipped_lines']} line(s) of tasks.jsonl without a task id or metrics are left out.")
    if m.get("predictions_per_second"):
        st.caption(
            f"{m.get('n_predictions')} view predictions at {m['predictions_per_second']:.1f}/s · "
            f"{m.get('wall_seconds', 0):.1f} s in all"
        )


def _n_tests(ref: PredictionRef) -> dict[str, int] | None:
    """Test inputs per selected task (from the dataset), so a partial submission lists every task."""
    try:
        ds = w.load_dataset(ref.config["dataset"])
        return {t: len(ds.tasks[t].test) for t in ref.config.get("tasks", []) if t in ds.tasks}
    except Exception:  # noqa: BLE001 — a dataset that moved: only the tasks done are listed
        return None


def submission_bytes(ref: PredictionRef) -> tuple[bytes, bool]:
    """(submission.json's bytes, complete): the file the prediction wrote, or, while it runs or when it ended
    without one, the submission of the tasks done so far (``[[0]]`` for the rest)."""
    f = ref.path / "submission.json"
    if f.exists():
        return f.read_bytes(), True
    return (json.dumps(partial_submission(ref, _n_tests(ref)), separators=(",", ":")) + "\n").encode(), False


def _file_data(path: Path):
    return lambda: path.read_bytes() if path.exists() else b""


def downloads(ref: PredictionRef) -> None:
    """Download buttons: submission.json (or the partial one), predictions.jsonl, tasks.jsonl, metrics.json and
    config.json; each file is read only when its button is clicked."""
    d = ref.path
    done = (d / "submission.json").exists()
    c = st.columns(5)
    c[0].download_button(
        "submission.json" if done else "submission.json (partial)",
        lambda: submission_bytes(ref)[0],
        file_name=f"{ref.name}-submission.json",
        mime="application/json",
        key="pred_dl_submission",
        on_click="ignore",
        help="Kaggle's format: two attempts per test input"
        + ("" if done else "; so far only the tasks done (the rest [[0]])"),
        icon=":material/download:",
    )
    for col, (fname, mime, what) in zip(
        c[1:],
        (
            ("predictions.jsonl", "application/jsonl", "one line per view: raw text, grid, reason, log-prob"),
            ("tasks.jsonl", "application/jsonl", "one line per task: attempts, candidates, metrics"),
            ("metrics.json", "application/json", "the summary and per-task metrics"),
            ("config.json", "application/json", "every option of the prediction"),
        ),
    ):
        col.download_button(
            fname,
            _file_data(d / fname),
            file_name=f"{ref.name}-{fname}",
            mime=mime,
            key=f"pred_dl_{fname}",
            on_click="ignore",
            disabled=not (d / fname).exists(),
            help=what,
            icon=":material/download:",
        )


# --------------------------------------------------------------------------- task table


def open_task(tid: str | None) -> None:
    w.set_query_params(task=tid)


def _table_key() -> str:
    """The task table's widget key: a new one after each row click, so the table the user returns to ('← All
    tasks') has no selection left that would open the same task again."""
    return f"pred_table_{st.session_state.get('_pred_table_n', 0)}"


def task_table(ref: PredictionRef) -> None:
    import pandas as pd

    df = pv.task_frame(tasks_of(ref))
    if df.empty:
        st.info("No task is done yet." + (" They appear here as they finish." if ref.live else ""))
        return
    f = st.columns([2, 2, 2, 3, 2], vertical_alignment="bottom")
    solved = f[0].selectbox("Solved", ["all", "solved", "unsolved"], key="pred_f_solved")
    size = f[1].selectbox("Size of attempt 1", ["all", "match", "mismatch"], key="pred_f_size")
    pix = f[2].slider("Pixel accuracy ≥", 0.0, 1.0, 0.0, 0.05, key="pred_f_pixels")
    losses = df["val_loss"].dropna()
    loss = None
    if len(losses) and losses.max() > losses.min() and not ref.live:  # (a live table's range would keep moving)
        lo, hi = float(losses.min()), float(losses.max())
        rng = f[3].slider("Val loss", lo, hi, (lo, hi), key="pred_f_loss")
        loss = None if rng == (lo, hi) else rng
    text = f[4].text_input("Task id contains", key="pred_f_text")
    shown: pd.DataFrame = pv.filter_tasks(df, solved, pix, loss, size, text)
    total = len(ref.config.get("tasks") or []) or len(df)
    st.caption(
        f"{len(shown)} of {len(df)} tasks done"
        + (f" (of {total})" if total != len(df) else "")
        + " · click a row to open the task, or a column header to sort"
    )
    ev = st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key=_table_key(),
        column_config=TASK_COLUMNS,
    )
    rows = ev.selection.rows if ev is not None and hasattr(ev, "selection") else []
    if rows and rows[0] < len(shown):
        st.session_state["_pred_table_n"] = st.session_state.get("_pred_table_n", 0) + 1
        open_task(shown.iloc[rows[0]]["task"])
        st.rerun(scope="app")
    c = st.columns([3, 1], vertical_alignment="bottom")
    tid = c[0].selectbox("Open a task", shown["task"].tolist(), key="pred_open", index=None, placeholder="task id…")
    c[1].button("Open", key="pred_open_btn", on_click=open_task, args=(tid,), disabled=tid is None)
