"""Streamlit parts of the Experiments page: one experiment's panel (status, Stop, the table, the charts; live
while it runs) and the comparison of several experiments."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ttft.runs import jobs, registry
from ttft.runs import metrics as runmetrics
from ttft.runs.experiments import compare_frame, per_task_losses, results_frame
from ttft.runs.rundir import ACTIVE, RunDir, read_json
from ttft.views import sweepviz

LIVE_S = 2.0
#: the table's number formats
COLUMNS = {
    "val accuracy": st.column_config.NumberColumn(format="percent"),
    "pass@2": st.column_config.NumberColumn(format="percent"),
    "vote@1": st.column_config.NumberColumn(format="percent"),
    "pixels": st.column_config.NumberColumn(format="percent"),
    "val loss": st.column_config.NumberColumn(format="%.4f"),
    "TTFT s": st.column_config.NumberColumn(format="%.0f"),
    "total s": st.column_config.NumberColumn(format="%.0f"),
    "s/task/100 steps": st.column_config.NumberColumn(format="%.1f"),
    "mean loss change per task": st.column_config.NumberColumn(format="percent"),
}


def experiment_job(path: Path) -> registry.Job | None:
    """The job of an experiment folder: the queued job that runs it (launched from the app or ``jobs launch``),
    else the folder itself (an experiment run from the command line)."""
    path = Path(path).absolute()
    root = path.parent.parent
    for j in registry.list_jobs(root):
        if j.path == path or j.run.path == path:
            return j
    return None


def _stop(path: Path) -> None:
    job = experiment_job(path)
    if job is None or not job.active:
        st.session_state["_exp_msg"] = "Nothing to stop: the experiment is not running."
        return
    jobs.stop(job, registry.JobConfig.from_env())
    st.session_state["_exp_msg"] = f"Stopping {job.id}: its running stage saves a checkpoint; rerun it to go on."


def _status_line(status: dict, cfg: dict) -> str:
    kind = cfg.get("experiment", "?")
    return (
        f"{kind} · status **{status.get('status', '?')}** · {status.get('rows_done', 0)} of "
        f"{status.get('n_rows', '?')} rows · {status.get('n_tasks', '?')} tasks of {cfg.get('dataset')} · "
        f"{cfg.get('steps')} steps · {cfg.get('views')} views · seed {cfg.get('seed')} · {cfg.get('gpus')} "
        f"process(es)"
        + (f" · profile {cfg['profile']}" if cfg.get("profile", "ttft") != "ttft" else "")
        + (f" · {cfg['threads']} CPU thread(s)" if cfg.get("threads") else "")
        + ("" if cfg.get("predict", True) else " · no prediction (the runs' val loss)")
    )


def _body(exp: RunDir) -> None:
    status, cfg = exp.status(), exp.config()
    st.caption(_status_line(status, cfg))
    if status.get("status") in ACTIVE:
        st.button("Stop", key="exp_stop", on_click=_stop, args=(exp.path,), help="SIGTERM: its stage is stopped")
        if status.get("stage"):
            st.caption(f"running stage: {status['stage']}")
    if msg := st.session_state.pop("_exp_msg", None):
        st.info(msg)
    if status.get("error"):
        st.error(status["error"])
    results = read_json(exp.path / "results.json") or {}
    df = results_frame(results, exp.path)
    if df.empty:
        st.info("No row has finished yet.")
        return
    st.dataframe(df, hide_index=True, column_config=COLUMNS)
    base = df["val loss"].iloc[0]
    if base is not None and len(df) > 1:
        better = df[(df.index > 0) & (df["val loss"] < base)]["experiment"].tolist()
        st.caption(f"Rows with a lower val loss than the {df['experiment'].iloc[0]}: {', '.join(better) or 'none'}.")
    st.plotly_chart(sweepviz.ablation_figure(results, exp.path), key="ablation_chart")
    for opt in sweepviz.swept_options(results):
        st.plotly_chart(sweepviz.loss_vs_value(results, opt, exp.path), key=f"loss_vs_{opt}")
    with st.expander("Val loss per task and row"):
        st.plotly_chart(sweepviz.task_heatmap(results, exp.path), key="task_heatmap")
        st.dataframe(per_task_losses(results, exp.path), column_config={"_index": "task"})
    log = exp.path / "log.txt"
    if log.exists():
        with st.expander("Log"):
            st.code(runmetrics.tail_text(log, 60))


def panel(path: Path) -> None:
    """An experiment's status, Stop, table and charts, refreshed every LIVE_S seconds while it runs."""
    exp = RunDir(path)
    active = exp.status().get("status") in ACTIVE

    @st.fragment(run_every=LIVE_S if active else None)
    def _live() -> None:
        _body(exp)
        if active and exp.status().get("status") not in ACTIVE:
            st.rerun()  # it ended: redraw the page once, without the timer

    _live()


def compare(paths: list[Path]) -> None:
    """The rows of the chosen experiments side by side (sweeps and seed ablations alike)."""
    names = [p.name for p in paths]
    picked = st.multiselect("Experiments to compare", names, default=names[:2], key="exp_compare")
    if not picked:
        return
    by_name = {p.name: p for p in paths}
    table = compare_frame({n: (read_json(by_name[n] / "results.json") or {}, by_name[n]) for n in picked})
    if table.empty:
        st.info("None of them has a finished row yet.")
        return
    st.dataframe(table, hide_index=True, column_config=COLUMNS)
    st.plotly_chart(sweepviz.compare_figure(table), key="compare_chart")
