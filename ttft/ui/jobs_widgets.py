"""Streamlit parts of the Fine-tune page: the training-options form (generated from the config dataclasses), the
runs list, and the live panel of one run. Jobs run in their own processes (:mod:`ttft.jobs`); this only reads
their run directories and asks :mod:`ttft.jobs` to launch, stop, resume or delete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from ttft.engine import commands
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError
from ttft.runs import jobs, registry, rundir
from ttft.runs import metrics as runmetrics
from ttft.runs.rundir import write_json_atomic
from ttft.ui import forms
from ttft.ui import widgets as w
from ttft.views import charts

# --------------------------------------------------------------------------- the options form

#: the form's tabs, in this order (the groups declared on the options; any other group follows)
TABS = ("Data", "Model & LoRA", "Optimisation", "Augmentation", "Encoding", "Eval & logging")
PREFIX = "ft"


def config_to_state(d: dict) -> None:
    """Put a config (TrainConfig JSON, e.g. a run's config.json) into the form (Clone config / load a file).
    Raises ConfigError naming the option when the config is not valid; the form is left as it was."""
    forms.config_to_state(TrainConfig, PREFIX, {k: v for k, v in d.items() if k != "shards"})


@dataclass
class FormResult:
    cfg: TrainConfig | None
    error: str | None
    selected: str  # "N of M tasks" (or why it is unknown)


def options_form() -> FormResult:
    """Every training option, in tabs; returns the validated config or the first error (naming the option). The
    dataset, task ids and the cheap parts of the model source are checked too, so Launch is enabled only for a
    run that can start."""
    form = forms.config_form(TrainConfig, PREFIX, order=TABS)
    selected = _selected_tasks(form.values)
    cfg, error = forms.read_config(TrainConfig, form)
    if cfg is None:
        return FormResult(None, error, selected)
    try:
        commands.check_launchable(cfg)
    except ConfigError as e:
        return FormResult(None, str(e), selected)
    if selected.startswith(("tasks:", "dataset:")):
        return FormResult(None, selected, selected)
    return FormResult(cfg, None, selected)


def _selected_tasks(values: dict) -> str:
    """How many tasks the dataset / ids / max_task_tokens choice selects (checked before launch)."""
    spec = values.get("dataset") or ""
    if not spec:
        return "tasks: enter a dataset path"
    try:
        ds = w.load_dataset(spec)
    except Exception as e:  # noqa: BLE001 — shown to the user, the job would fail the same way
        return f"dataset: {e}"
    ids = values.get("tasks") or []
    unknown = [t for t in ids if t not in ds.tasks]
    if unknown:
        return f"tasks: unknown task id(s) {', '.join(unknown[:5])} in {spec}"
    stats = w.dataset_stats(spec, ds)
    if ids:
        stats = stats[stats["id"].isin(ids)]
    mx = values.get("max_task_tokens")
    if mx is not None:
        stats = stats[stats["tokens"] <= mx]
    if not len(stats):
        return f"tasks: no task of {spec} is selected (max_task_tokens={mx})"
    return f"{len(stats)} of {len(ds)} tasks of {spec} selected"


def command_block(cfg: TrainConfig) -> None:
    argv = commands.train_argv(cfg)
    if argv is None:
        st.code("python -m ttft train --config config.json", language="bash")
        st.caption("Some options have no command-line flag: the command reads them from the config file "
                   "(Download config.json below).")
    else:
        st.code(jobs.command_line(argv), language="bash", wrap_lines=True)
        st.caption("The exact command (options at their default are left out). **Launch** runs it as a background "
                   "job with `--run-dir` in the runs folder, like `python -m ttft jobs launch -- train …`.")


def _load_upload() -> None:
    up = st.session_state.get("ft_upload")
    if up is None:
        return
    try:
        config_to_state(json.loads(up.getvalue()))
        st.session_state["_ft_msg"] = ("success", f"Loaded {up.name} into the form.")
    except (ValueError, RecursionError) as e:
        st.session_state["_ft_msg"] = ("error", f"{up.name}: not a training config ({e})")


def _path_action(action: str) -> None:
    p = Path(st.session_state.get("ft_cfg_path", "").strip()).expanduser()
    if p.suffix != ".json":
        st.session_state["_ft_msg"] = ("error", f"{p}: give a path ending in .json")
        return
    try:
        if action == "load":
            config_to_state(json.loads(p.read_text()))
            st.session_state["_ft_msg"] = ("success", f"Loaded {p} into the form.")
        else:
            write_json_atomic(p, st.session_state["_ft_cfg_json"])
            st.session_state["_ft_msg"] = ("success", f"Saved the config to {p}.")
    except (OSError, ValueError, RecursionError) as e:
        st.session_state["_ft_msg"] = ("error", f"{p}: {e}")


def config_files(cfg: TrainConfig | None) -> None:
    """Download / upload a config, or save / load one at a path on the server."""
    if cfg is not None:
        st.session_state["_ft_cfg_json"] = cfg.to_json()
    c = st.columns([1, 2, 2], vertical_alignment="bottom")
    c[0].download_button("Download config.json", json.dumps(cfg.to_json() if cfg else {}, indent=2),
                         file_name=f"ttft-{cfg.mode if cfg else 'config'}.json", mime="application/json",
                         disabled=cfg is None, icon=":material/download:", key="ft_download")
    c[1].file_uploader("Load a config file", type=["json"], key="ft_upload", on_change=_load_upload,
                       help="a saved config, or any run's config.json")
    with c[2]:
        st.text_input("Config path on the server", key="ft_cfg_path", placeholder="configs/my-run.json")
        b = st.columns(2)
        b[0].button("Save", on_click=_path_action, args=("save",), disabled=cfg is None, key="ft_cfg_save",
                    width="stretch")
        b[1].button("Load", on_click=_path_action, args=("load",), key="ft_cfg_load", width="stretch")


def show_message() -> None:
    msg = st.session_state.pop("_ft_msg", None)
    if msg:
        getattr(st, msg[0])(msg[1])


# --------------------------------------------------------------------------- runs list

STATUS_ICON = {"queued": "⏳", "running": "▶️", "stopping": "⏹️", "stopped": "⏸️", "finished": "✅", "failed": "❌",
               "lost": "⚠️"}
STATUS_COLOR = {"queued": "gray", "running": "blue", "stopping": "orange", "stopped": "orange", "finished": "green",
                "failed": "red", "lost": "violet"}


def job_config() -> registry.JobConfig:
    return registry.JobConfig.from_env()


def signature(js: list[registry.Job]) -> tuple:
    return tuple((j.id, j.status) for j in js)


def _maybe_rerun_app(sig: tuple) -> None:
    """From a fragment's timed rerun: when a run appeared, ended or changed state, rerun the whole page (the run
    picker, the panel's refresh rate and its buttons depend on it)."""
    if st.session_state.get("_ft_full_run"):
        return
    if sig != st.session_state.get("_ft_sig"):
        st.rerun(scope="app")


def runs_table(js: list[registry.Job]) -> pd.DataFrame:
    rows = []
    for j in js:
        loss = j.raw.get("final_loss")
        if j.active and (j.path / "metrics.jsonl").exists():
            loss = registry.progress(j, metrics_for(j)).loss
        cfg = j.config()
        rows.append({
            "run": j.id, "status": f"{STATUS_ICON.get(j.status, '')} {j.status}",
            "queue": f"#{j.position}" if j.position else "",
            "progress": min(1.0, j.step / j.max_steps) if j.max_steps else None,
            "step": f"{j.step}/{j.max_steps}" if j.max_steps else "", "loss": loss, "val loss": j.raw.get("val_loss"),
            "mode": cfg.get("mode"), "dataset": cfg.get("dataset"), "slot": j.kind,
            "created": pd.Timestamp.fromtimestamp(j.created) if j.created else None,
        })
    return pd.DataFrame(rows)


def runs_list(root: Path) -> None:
    """The runs in the folder, refreshed every 2 s in the browser (a new CLI run appears by itself)."""

    @st.fragment(run_every=2.0)
    def _list() -> None:
        js = registry.list_jobs(root)
        _maybe_rerun_app(signature(js))
        if not js:
            st.info(f"No runs yet in `{root}`. Fill in the options below and press **Launch**, or start one by "
                    "command line (`python -m ttft jobs launch -- train …`): it appears here.")
            return
        df = runs_table(js)
        st.dataframe(df, hide_index=True, key="ft_runs_table", column_config={
            "queue": st.column_config.TextColumn("queue", help="position in the queue (queued runs)"),
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "loss": st.column_config.NumberColumn(format="%.4f"),
            "val loss": st.column_config.NumberColumn(format="%.4f"),
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        }, height=min(400, 38 + 35 * len(df)), placeholder="")

    _list()


def run_picker(js: list[registry.Job]) -> registry.Job | None:
    """Which run the panel shows (mirrored in the ``run`` query parameter)."""
    ids = [j.id for j in js]
    nxt = st.session_state.pop("_ft_select_next", None)
    if nxt in ids:
        st.session_state["ft_run"] = nxt
    elif st.session_state.get("ft_run") not in ids:
        qp = w.query_param("run")
        st.session_state["ft_run"] = qp if qp in ids else (ids[0] if ids else None)
    if not ids:
        w.set_query_params(run=None)
        return None
    by_id = {j.id: j for j in js}
    rid = st.selectbox("Run", ids, key="ft_run", format_func=lambda i: f"{i} · {by_id[i].status}"
                       + (f" #{by_id[i].position}" if by_id[i].position else ""))
    w.set_query_params(run=rid)
    return by_id.get(rid)


# --------------------------------------------------------------------------- the live panel of one run


@st.cache_data(max_entries=32, show_spinner=False)
def _metrics_cached(path: str, mtime_ns: int, size: int) -> runmetrics.Metrics:
    return runmetrics.read_metrics(path)


def metrics_for(job: registry.Job) -> runmetrics.Metrics:
    """A run's metrics, cached by (path, mtime, size); a grown file is parsed incrementally (new lines only)."""
    f = job.path / "metrics.jsonl"
    try:
        s = f.stat()
    except FileNotFoundError:
        return runmetrics.Metrics()
    return _metrics_cached(str(f), s.st_mtime_ns, s.st_size)


def panel_data(job: registry.Job, log_y: bool = False):
    """What one refresh of the live panel computes: (metrics, progress, loss figure)."""
    m = metrics_for(job)
    return m, registry.progress(job, m), charts.loss_figure(m, log_y=log_y, uirevision=job.id)


def _act(action: str, path: str) -> None:
    cfg = job_config()
    try:
        if action == "stop":
            j = jobs.stop(path, cfg, wait=False)
            st.session_state["_ft_msg"] = ("info", f"Stopping {j.id}: it saves a checkpoint and ends 'stopped' "
                                                   f"(SIGKILL after {cfg.stop_timeout_s:g} s).")
        elif action == "resume":
            j = jobs.resume(path, cfg)
            st.session_state["_ft_msg"] = ("info", f"{j.id} queued again: `{j.command()}`")
        elif action == "clone":
            config_to_state(registry.read_job(path).config())
            st.session_state["_ft_msg"] = ("success", f"The config of {Path(path).name} is in the form below: change "
                                                      "it and Launch.")
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


def run_panel(job: registry.Job) -> None:
    """Progress, ETA, tokens/s, the loss chart, the log tail and the actions of one run; refreshed every second
    while the job is queued or running."""
    path = str(job.path)

    @st.fragment(run_every=1.0 if job.active else None)
    def _panel() -> None:
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


def _panel_body(j: registry.Job) -> None:
    head = st.columns([6, 1], vertical_alignment="center")
    head[0].subheader(j.id)
    head[1].badge(j.status, icon=None, color=STATUS_COLOR.get(j.status, "gray"))
    cfg = j.config()
    st.caption(" · ".join(str(x) for x in (
        cfg.get("mode"), cfg.get("dataset"), (cfg.get("model") or {}).get("base_model"),
        f"{j.kind} slot" if j.kind else None, j.raw.get("slot"), f"pid {j.pid}" if j.pid and j.active else None)
        if x))
    if j.status == "queued":
        st.info(f"Queued: position {j.position or '?'} for the {j.kind} slot. It starts when the jobs before it end "
                "— also with the app closed.")
    elif j.status == "lost":
        ck = j.run.last_checkpoint()
        st.warning(f"Lost: {j.note}. Everything it wrote is kept; **Resume** continues from "
                   + (f"its last checkpoint ({ck.name})." if ck else "the start (no checkpoint was saved)."))
    elif j.status == "failed":
        st.error(f"Failed: {j.raw.get('error') or 'see the traceback'}")
        tb = j.raw.get("traceback") or runmetrics.tail_text(j.path / rundir.STDERR_FILE, 30)
        st.code("\n".join(str(tb).rstrip().splitlines()[-25:]), language="text")
    elif j.status == "stopped" and j.raw.get("note"):
        st.caption(f"Stopped: {j.raw['note']}")
    log_y = st.toggle("log-scale loss", key="ft_log_y")
    m, p, fig = panel_data(j, log_y)
    frac_text = f"step {p.step} / {p.max_steps}" if p.max_steps else f"step {p.step}"
    st.progress(p.fraction, text=frac_text)
    c = st.columns(6)
    c[0].metric("ETA", runmetrics.format_seconds(p.eta_s) if j.active else "–")
    c[1].metric("tokens/s", f"{p.tokens_per_second:,.0f}" if p.tokens_per_second else "–")
    c[2].metric("loss", f"{p.loss:.4f}" if p.loss is not None else "–")
    c[3].metric("eval loss", f"{p.eval_loss:.4f}" if p.eval_loss is not None else "–")
    c[4].metric("elapsed", runmetrics.format_seconds(p.elapsed_s))
    gpu = next((k for k in m.columns if k.startswith("gpu_mem")), None)
    c[5].metric("GPU memory" if gpu else "lr", (f"{runmetrics._last(m.col(gpu)):.2f}" if gpu else
                                                 f"{p.lr:.2e}" if p.lr is not None else "–"))
    st.plotly_chart(fig, key="ft_loss_chart", config={"displaylogo": False})
    _actions(j)
    with st.expander("Log", expanded=j.active):
        st.code(runmetrics.tail_text(j.run.log_file, 30) or "(nothing logged yet)", language="text", height=260)
        err = runmetrics.tail_text(j.path / rundir.STDERR_FILE, 15)
        if err and j.status in ("failed", "lost"):
            st.caption("stderr")
            st.code(err, language="text", height=200)
        if j.command():
            st.caption(f"command: `{j.command()}`")


def _actions(j: registry.Job) -> None:
    path = str(j.path)
    b = st.columns(4)
    b[0].button("Stop", on_click=_act, args=("stop", path), disabled=not j.active, key="ft_stop",
                icon=":material/stop:", width="stretch", help="SIGTERM: the job saves a checkpoint and ends 'stopped'")
    b[1].button("Resume", on_click=_act, args=("resume", path), disabled=j.status not in rundir.RESUMABLE,
                key="ft_resume", icon=":material/play_arrow:", width="stretch",
                help="continue from the last checkpoint (optimizer and scheduler state too)")
    b[2].button("Clone config", on_click=_act, args=("clone", path), disabled=not j.config(), key="ft_clone",
                icon=":material/content_copy:", width="stretch", help="load this run's options into the form")
    b[3].button("Delete", on_click=_act, args=("ask_delete", path), disabled=j.status in ("running", "stopping"),
                key="ft_delete", icon=":material/delete:", width="stretch",
                help="delete the run folder (stop it first)")
    if st.session_state.get("_ft_confirm_delete") == path:
        st.warning(f"Delete **{j.id}** and everything in it (checkpoints, adapter, metrics)? This cannot be undone.")
        c = st.columns([1, 1, 4])
        c[0].button("Yes, delete", type="primary", on_click=_act, args=("delete", path), key="ft_delete_yes")
        c[1].button("Cancel", on_click=_act, args=("cancel_delete", path), key="ft_delete_no")
