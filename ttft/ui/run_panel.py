"""The panel of one run on the Fine-tune page: status, progress, ETA, tokens/s, losses, the loss chart, the per-task
results of a per-task run, the log tail, and the actions (Stop, Resume, Clone config, Delete, Predict).

It refreshes itself every second while the run is queued, running or stopping, and not at all once it has ended.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from ttft.runs import jobs, registry, rundir
from ttft.runs import metrics as runmetrics
from ttft.ui import jobs_widgets as jw
from ttft.views import charts

#: the page a finished run is predicted from (its New-prediction form, the run's dataset and tasks preselected)
PREDICT_PAGE = "pages/4_Predictions.py"
#: how many lines of log.txt the panel shows (all of them visible: the newest is the last line on screen)
LOG_LINES = 15
ALL_TASKS = "all tasks"


def _act(action: str, path: str) -> None:
    cfg = jw.job_config()
    try:
        if action == "stop":
            before = registry.get_job(path, cfg.root)
            j = jobs.stop(path, cfg, wait=False)
            st.session_state["_ft_msg"] = ("info", stop_message(before, j, cfg))
        elif action == "resume":
            j = jobs.resume(path, cfg)
            where = f" ({jw.queue_text(j, cfg=cfg)})" if j.status == "queued" else f" ({j.status})"
            st.session_state["_ft_msg"] = ("info", f"{j.id} queued again{where}: `{j.command()}`")
        elif action == "clone":
            jw.config_to_state(registry.read_job(path).config())
            st.session_state["_ft_msg"] = (
                "success",
                f"The config of {Path(path).name} is in the form below: change it and Launch.",
            )
        elif action == "delete":
            jobs.delete(path, cfg)
            st.session_state.pop("_ft_confirm_delete", None)
            st.session_state["_ft_msg"] = ("success", f"Deleted {Path(path).name}.")
        elif action == "ask_delete":
            st.session_state["_ft_confirm_delete"] = path
        elif action == "cancel_delete":
            st.session_state.pop("_ft_confirm_delete", None)
    except (registry.JobError, ValueError, OSError) as e:
        st.session_state["_ft_msg"] = ("error", str(e))
    st.session_state["_ft_action"] = True


def stop_message(before: registry.Job, after: registry.Job, cfg: registry.JobConfig) -> str:
    """What Stop did, for the job as it was: a queued job leaves the queue (nothing ran, no checkpoint)."""
    if before.status == "queued":
        return f"Took {after.id} out of the queue: it is {after.status} and never starts (**Resume** queues it again)."
    kill = f"SIGKILL after {cfg.stop_timeout_s:g} s"
    conf = before.config()
    if conf.get("experiment"):
        return f"Stopping {after.id}: it stops its running stage and ends 'stopped' ({kill})."
    if _is_train(before):
        return f"Stopping {after.id}: it saves a checkpoint and ends 'stopped' ({kill})."
    return f"Stopping {after.id}: SIGTERM, it ends 'stopped' ({kill})."


def _is_train(j: registry.Job) -> bool:
    conf = j.config()
    return bool(conf) and not conf.get("experiment") and conf.get("kind") != "predict" and "mode" in conf


def predict_params(j: registry.Job) -> dict[str, str]:
    """The Predictions page's query parameters for predicting this run (it opens its New-prediction form)."""
    return {"run": str(j.path), "new": "1"}


def run_panel(job: registry.Job) -> None:
    """The panel of one run; refreshed every second while the job is queued, running or stopping."""
    path = str(job.path)

    @st.fragment(run_every=1.0 if job.active else None)
    def _panel() -> None:
        if not st.session_state.get("_ft_full_run"):
            jw.cheap_reruns()
        if st.session_state.pop("_ft_action", False) and not st.session_state.get("_ft_full_run"):
            st.rerun(scope="app")
        try:
            j = registry.get_job(path)
        except registry.JobError:
            st.rerun(scope="app")
            return
        if j.status != job.status and not st.session_state.get("_ft_full_run"):
            st.rerun(scope="app")  # the buttons and the refresh rate depend on the status
        _panel_body(j)

    _panel()


def _status_note(j: registry.Job) -> None:
    if j.status == "corrupt":
        st.error(
            f"Corrupt: {j.note or j.problem}. What can be read of it is shown; it cannot be resumed or predicted: "
            "repair the file, or **Delete** the run."
        )
    elif j.status == "queued":
        text = jw.queue_text(j)
        again = f"Queued again ({jw.resume_plan(j)})" if jw.queued_again(j) else "Queued"
        st.info(
            f"{again}: {text}."
            + ("" if "starting now" in text else " It starts when the jobs before it end — also with the app closed.")
        )
    elif j.status == "stopping":
        st.info(
            "Stopping: "
            + (
                "it finishes the current step and saves a checkpoint."
                if _is_train(j)
                else "it was sent SIGTERM and is ending."
            )
        )
    elif j.status == "lost":
        ck = j.run.last_checkpoint()
        st.warning(
            f"Lost: {j.note}. Everything it wrote is kept; **Resume** continues from "
            + (f"its last checkpoint ({ck.name})." if ck else "the start (no checkpoint was saved).")
        )
    elif j.status == "failed":
        st.error(f"Failed: {j.raw.get('error') or 'see the traceback'}")
        tb = j.raw.get("traceback") or runmetrics.tail_text(j.path / rundir.STDERR_FILE, 30)
        st.code("\n".join(str(tb).rstrip().splitlines()[-25:]), language="text")
    elif j.status == "stopped" and j.raw.get("note"):
        st.caption(f"Stopped: {j.raw['note']}")
    if j.status != "queued" and (done := jw.resumed_text(j.raw.get("resume"))):
        st.caption(f"Last resume: {done}.")


def _panel_body(j: registry.Job) -> None:
    head = st.columns([6, 1], vertical_alignment="center")
    head[0].subheader(j.id)
    head[1].badge(j.status, icon=None, color=jw.STATUS_COLOR.get(j.status, "gray"))
    cfg = j.config()
    slot = f" {j.raw['slot']}" if j.raw.get("slot") is not None and j.active else ""
    st.caption(
        " · ".join(
            str(x)
            for x in (
                cfg.get("mode"),
                "per task" if cfg.get("per_task") else None,
                cfg.get("dataset"),
                (cfg.get("model") or {}).get("base_model"),
                f"{j.kind} slot{slot}" if j.kind else None,
                f"pid {j.pid}" if j.pid and j.active else None,
            )
            if x
        )
    )
    _status_note(j)
    m = jw.metrics_for(j)
    if m.note:
        rest = "nothing of it is charted" if m.problem else "the chart and the losses show the rest"
        st.warning(f"Metrics: {m.note}; {rest}.", icon=":material/warning:")
    tasks = charts.tasks_of(m)
    per_task = bool(cfg.get("per_task")) or bool(tasks)
    ctl = st.columns([1, 2]) if tasks else [st.container()]
    with ctl[0]:
        log_y = st.toggle("log-scale loss", key="ft_log_y")
    pick = None
    if tasks:
        choice = ctl[1].selectbox(
            "Chart",
            [ALL_TASKS, *tasks],
            key="ft_chart_task",
            label_visibility="collapsed",
            help="one curve per task (each task trains its own adapter), or one task",
        )
        pick = None if choice == ALL_TASKS else choice
    m, p, fig = jw.panel_data(j, log_y, pick)
    now = time.time()
    current = (j.raw.get("task") or j.linked_raw.get("task")) if j.active else None
    frac_text = f"step {p.step} / {p.max_steps}" if p.max_steps else f"step {p.step}"
    steps_per_task = cfg.get("steps") if per_task else None
    if per_task and current and steps_per_task and p.max_steps:
        k = tasks.index(current) + 1 if current in tasks else len(tasks) + 1
        frac_text += f" · task {k} of {max(1, p.max_steps // int(steps_per_task))}: {current}"
    st.progress(p.fraction, text=frac_text)
    table = charts.task_table(m, steps_per_task, current) if per_task else None
    _metrics_row(j, m, p, table, current, now)
    st.plotly_chart(fig, key="ft_loss_chart", config={"displaylogo": False})
    if table is not None:
        task_results(table)
    _actions(j)
    with st.expander("Log", expanded=j.active):
        st.code(runmetrics.tail_text(j.run.log_file, LOG_LINES) or "(nothing logged yet)", language="text")
        err = runmetrics.tail_text(j.path / rundir.STDERR_FILE, LOG_LINES)
        if err and j.status in ("failed", "lost"):
            st.caption("stderr")
            st.code(err, language="text")
        if j.command():
            st.caption(f"command: `{j.command()}`")


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else format(v, spec)


def _metrics_row(
    j: registry.Job,
    m: runmetrics.Metrics,
    p: runmetrics.Progress,
    table: pd.DataFrame | None,
    current: str | None,
    now: float,
) -> None:
    c = st.columns(6)
    c[0].metric("ETA", runmetrics.format_seconds(p.eta_s) if j.active else "–")
    c[1].metric("tokens/s", f"{p.tokens_per_second:,.0f}" if p.tokens_per_second else "–")
    before_all = m.col(charts.BEFORE)
    if table is not None:
        done = table[table["state"] == "done"]
        means = charts.task_means(done)
        n = f"{means['done']} task{'s' if means['done'] != 1 else ''}"
        if current:
            c[2].metric(f"loss · {current}", _fmt(p.loss), help="the latest train loss of the task training now")
        else:
            c[2].metric(
                "mean train loss",
                _fmt(means.get("train loss")),
                help=f"the final train loss of each task, averaged over the {n} done",
            )
        change = means.get("change")
        c[3].metric(
            "mean val loss",
            _fmt(means.get("val loss after")),
            delta=f"{change:+.4f} vs before" if change is not None else None,
            delta_color="inverse",
            help=f"each task's val loss after its TTFT, averaged over the {n} done"
            + (" (the change: against the mean val loss before TTFT)" if change is not None else ""),
        )
    else:
        before = before_all[~np.isnan(before_all)]
        delta = (p.eval_loss - float(before[0])) if before.size and p.eval_loss is not None else None
        c[2].metric("loss", _fmt(p.loss))
        c[3].metric(
            "eval loss",
            _fmt(p.eval_loss),
            delta=f"{delta:+.4f} vs before" if delta is not None else None,
            delta_color="inverse",
        )
    secs = charts.run_seconds(m, j.raw, j.status, now)
    c[4].metric(
        "time",
        runmetrics.format_seconds(secs),
        help="training time over all the run's lives (resumed segments summed; time stopped or queued not counted)",
    )
    gpu = next((k for k in m.columns if k.startswith("gpu_mem")), None)
    c[5].metric(
        "GPU memory" if gpu else "lr",
        (f"{runmetrics._last(m.col(gpu)):.2f}" if gpu else f"{p.lr:.2e}" if p.lr is not None else "–"),
    )


def task_results(table: pd.DataFrame) -> None:
    """The per-task results: one row per task, and the means over the tasks done (said as such)."""
    done = table[table["state"] == "done"]
    means = charts.task_means(done)
    if not len(table):
        st.caption("Per-task run: no task has logged a step yet.")
        return
    parts = []
    if "train loss" in means:
        parts.append(f"final train loss {means['train loss']:.4f}")
    if "val loss after" in means:
        parts.append(
            f"val loss {means['val loss before']:.4f} before TTFT → {means['val loss after']:.4f} after"
            if "val loss before" in means
            else f"val loss after TTFT {means['val loss after']:.4f}"
        )
    if "seconds" in means:
        parts.append(
            f"{runmetrics.format_seconds(means['seconds'])} per task "
            f"({runmetrics.format_seconds(means['total seconds'])} in all)"
        )
    head = (
        f"**Means over the {means['done']} of {len(table)} tasks done**: " + " · ".join(parts)
        if means["done"] and parts
        else f"No task of {len(table)} is done yet."
    )
    st.markdown(f"Per-task results (each task trains its own adapter from the base model). {head}")
    shown = table.drop(columns=["seconds"])
    cols = {
        c: st.column_config.NumberColumn(c, format="%.4f")
        for c in ("train loss", "val loss before", "val loss after")
        if c in shown
    }
    if "change" in shown:
        cols["change"] = st.column_config.NumberColumn("change", format="%+.4f", help="after − before TTFT")
    cols["state"] = st.column_config.TextColumn(
        "state", help="done (its adapter and final eval are written), training, or stopped before its end"
    )
    st.dataframe(shown, hide_index=True, key="ft_task_table", column_config=cols, height=min(400, 38 + 35 * len(shown)))


def _actions(j: registry.Job) -> None:
    path = str(j.path)
    train = _is_train(j)
    b = st.columns(5 if train else 4)
    b[0].button(
        "Stop",
        on_click=_act,
        args=("stop", path),
        disabled=not j.active,
        key="ft_stop",
        icon=":material/stop:",
        width="stretch",
        help="take it out of the queue (it never starts)"
        if j.status == "queued"
        else "SIGTERM: the job saves a checkpoint and ends 'stopped'",
    )
    b[1].button(
        "Resume",
        on_click=_act,
        args=("resume", path),
        disabled=j.status not in rundir.RESUMABLE,
        key="ft_resume",
        icon=":material/play_arrow:",
        width="stretch",
        help="continue from the last checkpoint (optimizer and scheduler state too)",
    )
    b[2].button(
        "Clone config",
        on_click=_act,
        args=("clone", path),
        disabled=not j.config(),
        key="ft_clone",
        icon=":material/content_copy:",
        width="stretch",
        help="load this run's options into the form",
    )
    b[3].button(
        "Delete",
        on_click=_act,
        args=("ask_delete", path),
        disabled=j.status in ("running", "stopping"),
        key="ft_delete",
        icon=":material/delete:",
        width="stretch",
        help="delete the run folder (stop it first)",
    )
    if train:
        done = j.status == "finished"
        b[4].page_link(
            PREDICT_PAGE,
            label="Predict",
            icon=":material/target:",
            query_params=predict_params(j),
            disabled=not done,
            width="stretch",
            help="open the Predictions page's New-prediction form for this run (its dataset and tasks preselected)"
            if done
            else "a run can be predicted once it has finished",
        )
    if st.session_state.get("_ft_confirm_delete") == path:
        st.warning(f"Delete **{j.id}** and everything in it (checkpoints, adapter, metrics)? This cannot be undone.")
        c = st.columns([1, 1, 4])
        c[0].button("Yes, delete", type="primary", on_click=_act, args=("delete", path), key="ft_delete_yes")
        c[1].button("Cancel", on_click=_act, args=("cancel_delete", path), key="ft_delete_no")
