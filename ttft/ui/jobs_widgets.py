"""Streamlit parts of the Fine-tune page: the training-options form (generated from the config dataclasses), the
runs list with its status labels, and the run picker (the panel of one run is :mod:`ttft.ui.run_panel`). Jobs run in
their own processes (:mod:`ttft.runs.jobs`); this only reads their run directories and asks :mod:`ttft.runs.jobs` to
launch, stop, resume or delete.

Refreshing costs nothing measurable while no job is active: the runs list is then drawn once, and a watcher polls a
cheap signature of the runs folder (the names and the status/job files' mtimes) every 5 s, rerunning the page only
when it changed (a run launched by command line appears by itself; the page's own actions rerun it at once). While a
job is queued, running or stopping, the list is redrawn every 2 s (live progress, a killed process shows ``lost``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from ttft.engine import commands
from ttft.engine.train_config import TrainConfig
from ttft.options import ConfigError
from ttft.runs import jobs, registry, rundir, warm
from ttft.runs import metrics as runmetrics
from ttft.runs.rundir import LOCKS_DIR, write_json_atomic
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
        st.caption(
            "Some options have no command-line flag: the command reads them from the config file "
            "(Download config.json below)."
        )
    else:
        st.code(jobs.command_line(argv), language="bash", wrap_lines=True)
        st.caption(
            "The exact command (options at their default are left out). **Launch** runs it as a background "
            "job with `--run-dir` in the runs folder, like `python -m ttft jobs launch -- train …`."
        )


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
    c[0].download_button(
        "Download config.json",
        json.dumps(cfg.to_json() if cfg else {}, indent=2),
        file_name=f"ttft-{cfg.mode if cfg else 'config'}.json",
        mime="application/json",
        disabled=cfg is None,
        icon=":material/download:",
        key="ft_download",
    )
    c[1].file_uploader(
        "Load a config file",
        type=["json"],
        key="ft_upload",
        on_change=_load_upload,
        help="a saved config, or any run's config.json",
    )
    with c[2]:
        st.text_input("Config path on the server", key="ft_cfg_path", placeholder="configs/my-run.json")
        b = st.columns(2)
        b[0].button(
            "Save", on_click=_path_action, args=("save",), disabled=cfg is None, key="ft_cfg_save", width="stretch"
        )
        b[1].button("Load", on_click=_path_action, args=("load",), key="ft_cfg_load", width="stretch")


def show_message() -> None:
    msg = st.session_state.pop("_ft_msg", None)
    if msg:
        getattr(st, msg[0])(msg[1])


# --------------------------------------------------------------------------- status labels

#: statuses are plain words (coloured badges in the panel): no emoji, which render as boxes without an emoji font
STATUS_COLOR = {
    "queued": "gray",
    "running": "blue",
    "stopping": "orange",
    "stopped": "orange",
    "finished": "green",
    "failed": "red",
    "lost": "violet",
    "corrupt": "yellow",
}
#: how often (seconds) the page looks for changes: the live list while a job is active, the cheap watcher else
LIVE_S = 2.0
#: (a timed fragment rerun costs ~10 ms of Streamlit's own server time however little it does: every 5 s, 0.2 %
#: of a core; bench/bench_idle.py)
IDLE_POLL_S = 5.0


def job_config() -> registry.JobConfig:
    return registry.JobConfig.from_env()


def keep_warm_worker() -> None:
    """Keep the runs folder's warm worker alive while a page that launches jobs is open (:mod:`ttft.runs.warm`: a
    job's process is forked from a process that has imported torch and transformers already, ~7 s sooner than a
    fresh one). Costs a file read and a /proc lookup per page run; a worker that cannot start only means fresh
    processes (``TTFT_WARM_WORKER=0`` turns it off)."""
    with contextlib.suppress(OSError):
        warm.ensure(job_config().root)


def signature(js: list[registry.Job]) -> tuple:
    return tuple((j.id, j.status, j.position) for j in js)


def files_signature(root: Path) -> tuple:
    """What a change of the runs folder touches: the run folders' names and their status/job files' mtimes
    (a few ``stat`` calls per run; statuses derived from process liveness are checked by the live list)."""
    out = []
    for base in (Path(root), Path(root) / registry.EXPERIMENTS_DIR):
        try:
            entries = sorted(os.scandir(base), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            if e.name.startswith(".") or not e.is_dir():
                continue
            stamps = []
            for f in ("status.json", rundir.JOB_FILE, "config.json"):
                try:
                    stamps.append(os.stat(os.path.join(e.path, f)).st_mtime_ns)
                except OSError:
                    stamps.append(0)
            out.append((e.name, *stamps))
    return tuple(out)


def slots_busy(root: Path, kind: str, slots: int) -> int | None:
    """How many of the ``kind`` slots are held now (their lock files have a ``flock`` in /proc/locks), without
    taking one; None when /proc/locks cannot be read."""
    d = Path(root) / LOCKS_DIR
    inodes = set()
    for i in range(slots):
        try:
            s = os.stat(d / f"{kind}-{i}.lock")
        except OSError:
            continue
        inodes.add((os.major(s.st_dev), os.minor(s.st_dev), s.st_ino))
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    held = set()
    for line in text.splitlines():
        f = line.split()
        if len(f) < 6 or "->" in f or f[1] != "FLOCK":
            continue
        try:
            maj, mnr, ino = f[5].split(":")
            held.add((int(maj, 16), int(mnr, 16), int(ino)))
        except ValueError:
            continue
    return len(inodes & held)


def queue_text(j: registry.Job, root: Path | None = None, cfg: registry.JobConfig | None = None) -> str:
    """What a queued job is waiting for, honestly: starting now (first in line and a slot is free) or its position
    and how many slots are busy."""
    cfg = cfg or job_config()
    root = registry.queue_root(j.path, j.meta) if root is None else root
    n = int(
        j.meta.get("slots") or (jobs.ORCHESTRATOR_SLOTS if j.kind == registry.ORCHESTRATOR else cfg.slots(j.kind))
    )  # the slot count it was queued with
    busy = slots_busy(root, j.kind, n) if j.kind else None
    if j.position == 1 and busy is not None and busy < n:
        return f"position 1 for the {j.kind} slot, starting now (a slot is free)"
    held = f", {busy} of {n} slot(s) busy" if busy is not None else ""
    return f"position {j.position or '?'} for the {j.kind or '?'} slot{held}"


def queued_again(j: registry.Job) -> bool:
    """A queued run that ran before (``jobs resume`` / Resume queued it again): it continues, not starts over."""
    launches = j.meta.get("launches")
    return j.status == "queued" and isinstance(launches, int) and launches > 1


def resume_plan(j: registry.Job) -> str:
    """What a run queued again will do when it starts (from the checkpoints on disk now)."""
    cfg = j.config()
    if cfg.get("experiment"):
        return "it runs its experiment again (the rows done are skipped)"
    if "mode" not in cfg or cfg.get("kind") == "predict":
        return "it runs its command again"
    ck, skipped = j.run.intact_checkpoint()
    skip = f" (skipping {', '.join(f'{c.name}: {why}' for c, why in skipped[:2])})" if skipped else ""
    if ck is not None:
        return f"it resumes from {ck.name}{skip}"
    if cfg.get("per_task"):
        return f"it resumes its unfinished tasks (the tasks done are kept){skip}"
    return f"no intact checkpoint: it trains again from its first step{skip}"


def resumed_text(rec: object) -> str:
    """What the last resume did, from status.json's ``resume`` record ('' when there is none)."""
    if not isinstance(rec, dict):
        return ""
    task = rec.get("task")
    what = f" task {task}" if isinstance(task, str) and task else ""
    frm = rec.get("from")
    parts = [
        f"resumed{what} from {frm}"
        if isinstance(frm, str) and frm
        else f"no intact checkpoint{what} was left: trained{what or ' the run'} again from its first step"
    ]
    skipped = rec.get("skipped")
    if isinstance(skipped, list) and skipped:
        parts.append("skipped " + "; ".join(str(x) for x in skipped[:3]))
    lines = rec.get("superseded_lines")
    if isinstance(lines, int) and not isinstance(lines, bool) and lines > 0:
        parts.append(f"{lines} metrics line(s) after it moved to {runmetrics.SUPERSEDED_FILE}")
    return "; ".join(parts)


def run_note(j: registry.Job) -> str:
    """The runs list's one-line note of a run: why it is corrupt, lost or failed, what a run queued again will
    do, what its last resume did."""
    if j.status == "corrupt":
        return j.note or j.problem
    if queued_again(j):
        return f"queued again: {resume_plan(j)}"
    if j.status == "failed":
        return str(j.raw.get("error") or j.note or "")
    if j.status in ("lost", "stopped") and j.note:
        return j.note
    done = resumed_text(j.raw.get("resume"))
    return "; ".join(x for x in (done, j.note) if x)


def launch_message(j: registry.Job, root: Path, cfg: registry.JobConfig) -> str:
    if j.status != "queued":
        return f"Launched {j.id} ({j.status})."
    return f"Launched {j.id}: queued, {queue_text(j, root, cfg)}."


_HEAP = {"frozen": False}


def cheap_reruns() -> None:
    """Called from a fragment's timed rerun: once per process, move the objects alive then (imported modules,
    loaded datasets, caches) to the permanent generation (``gc.freeze``). Streamlit runs a full ``gc.collect(2)``
    after every script run, fragment reruns included (``runner.postScriptGC``); with streamlit, plotly, pandas and
    the datasets loaded that took ~0.1 s of CPU or more each time, nearly all of an idle tab's cost (a timed rerun
    every 2 s: about 10 % of a core). Frozen objects are still freed by reference counting; only cycles among them are
    no longer looked for."""
    if not _HEAP["frozen"]:
        _HEAP["frozen"] = True
        gc.collect()
        gc.freeze()


def _maybe_rerun_app(sig: tuple) -> None:
    """From a fragment's timed rerun: when a run appeared, ended or changed state, rerun the whole page (the run
    picker, the panel's refresh rate and its buttons depend on it)."""
    if st.session_state.get("_ft_full_run"):
        return
    if sig != st.session_state.get("_ft_sig"):
        st.rerun(scope="app")


# --------------------------------------------------------------------------- runs list


def runs_table(js: list[registry.Job]) -> pd.DataFrame:
    rows = []
    for j in js:
        loss = j.raw.get("final_loss")
        if j.active and (j.path / "metrics.jsonl").exists():
            loss = registry.progress(j, metrics_for(j)).loss
        cfg = j.config()
        rows.append(
            {
                "run": j.id,
                "status": j.status,
                "queue": f"#{j.position}" if j.position else "",
                "progress": min(1.0, j.step / j.max_steps) if j.max_steps else None,
                "step": f"{j.step}/{j.max_steps}" if j.max_steps else "",
                "loss": loss,
                "val loss": j.raw.get("val_loss"),
                "mode": cfg.get("mode") or ("experiment" if cfg.get("experiment") else cfg.get("kind")),
                "per task": bool(cfg.get("per_task")),
                "dataset": cfg.get("dataset"),
                "slot": j.kind,
                "created": pd.Timestamp.fromtimestamp(j.created) if j.created else None,
                "note": run_note(j),
            }
        )
    return pd.DataFrame(rows)


def _table(root: Path, js: list[registry.Job]) -> None:
    if not js:
        st.info(
            f"No runs yet in `{root}`. Fill in the options below and press **Launch**, or start one by "
            "command line (`python -m ttft jobs launch -- train …`): it appears here."
        )
        return
    df = runs_table(js)
    st.dataframe(
        df,
        hide_index=True,
        key="ft_runs_table",
        column_config={
            "status": st.column_config.TextColumn(
                "status",
                help="queued, running, stopping, stopped, finished, failed, lost (its process is gone), or corrupt "
                "(a file of it cannot be read: the note says which and why)",
            ),
            "note": st.column_config.TextColumn(
                "note", help="why it is corrupt, lost or failed; what a run queued again will do; its last resume"
            ),
            "queue": st.column_config.TextColumn("queue", help="position in the queue (queued runs)"),
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "loss": st.column_config.NumberColumn(format="%.4f", help="the last train loss"),
            "val loss": st.column_config.NumberColumn(
                format="%.4f", help="the final validation loss; for a per-task run the mean over its tasks"
            ),
            "per task": st.column_config.CheckboxColumn("per task", help="one adapter per task (--per-task)"),
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        },
        height=min(400, 38 + 35 * len(df)),
        placeholder="",
    )


def runs_list(root: Path, js: list[registry.Job] | None = None) -> None:
    """The runs in the folder. While a job is active the list redraws itself every 2 s (live progress and
    statuses); else it is drawn once and a watcher reruns the page when the runs folder changes."""
    js = registry.list_jobs(root) if js is None else js
    if any(j.active for j in js):

        @st.fragment(run_every=LIVE_S)
        def _live() -> None:
            cur = js
            if not st.session_state.get("_ft_full_run"):
                cheap_reruns()
                cur = registry.list_jobs(root)
                _maybe_rerun_app(signature(cur))
            _table(root, cur)

        _live()
    else:
        _table(root, js)
        watch(root)


def watch(root: Path) -> None:
    """Rerun the page when the runs folder changes (a run appears, is deleted, or writes its status): a timed
    fragment (every ``IDLE_POLL_S``) that draws nothing and costs a few ``stat`` calls."""
    st.session_state["_ft_files"] = files_signature(root)

    @st.fragment(run_every=IDLE_POLL_S)
    def _watch() -> None:
        if st.session_state.get("_ft_full_run"):
            return
        cheap_reruns()
        if files_signature(root) != st.session_state.get("_ft_files"):
            st.rerun(scope="app")

    _watch()


def run_picker(js: list[registry.Job]) -> registry.Job | None:
    """Which run the panel shows (mirrored in the ``run`` query parameter). The options are the run ids only: a
    selectbox keeps showing the label it was first drawn with, so a status in it would go stale (the panel's
    badge and the runs list say the status)."""
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
    rid = st.selectbox("Run", ids, key="ft_run")
    w.set_query_params(run=rid)
    return by_id.get(rid)


# --------------------------------------------------------------------------- what the panel of one run reads


def metrics_for(job: registry.Job) -> runmetrics.Metrics:
    """A run's metrics from the process-wide incremental reader of its metrics.jsonl
    (:func:`ttft.runs.metrics.read_metrics`: one reader per file, a bounded number of them, each parsing only the
    lines appended since its last read). Nothing is copied per refresh: the same arrays are returned while the
    file is unchanged, so a live run's server memory stays flat (``st.cache_data`` pickled a copy of every
    version of a growing file)."""
    f = job.run_dir / "metrics.jsonl" if not (job.path / "metrics.jsonl").exists() else job.path / "metrics.jsonl"
    return runmetrics.read_metrics(f)


def panel_data(job: registry.Job, log_y: bool = False, task: str | None = None):
    """What one refresh of the live panel computes: (metrics, progress, loss figure). The figure is bounded
    (a few thousand points per trace: :func:`ttft.views.charts.loss_figure` downsamples long runs)."""
    m = metrics_for(job)
    return m, registry.progress(job, m), charts.loss_figure(m, log_y=log_y, uirevision=job.id, task=task)
