"""Streamlit parts of the Try page: a task, a model (a finished training run or a base model) and a few views;
the attempts against the truth as soon as a small background prediction job has written them.

A try is an ordinary ``python -m ttft predict`` job (:func:`launch_prediction`) writing
``<runs>/tries/predictions/<time>-<task>/`` (the Predictions page lists the tries as the run ``tries``). The page
only reads that folder and the job's; it refreshes itself only while one of this session's tries is active. For
speed (``bench/bench_try.py``): the task alone is written to the try's folder and predicted from there, a small
model runs on one CPU thread, a model with the embedded tokenizer gets a task-based generation budget, and torch
is imported in the background when the page opens. What remains is the job's process: ~7 s of CPU importing torch
and transformers, the model load and the generation.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path

import streamlit as st

from ttft.core.metrics import as_grid, same_grid
from ttft.engine.commands import check_model_ready, launch_prediction
from ttft.engine.predict_config import PredictConfig
from ttft.options import ConfigError
from ttft.runs import jobs, registry
from ttft.runs.metrics import tail_text
from ttft.runs.predictions import PredictionRef, read_prediction
from ttft.runs.rundir import STDERR_FILE, TERMINAL, read_json, safe_name, write_json_atomic
from ttft.runs.rundir import SUPERVISOR_FILE as SUPERVISOR
from ttft.ui import navigation as nav
from ttft.ui import predict_widgets as pw
from ttft.ui import widgets as w
from ttft.views import predviz as pv

#: where tries are written, relative to the runs folder (``predictions/`` inside, so the Predictions page finds
#: them under the run key ``tries``)
TRIES_DIR = "tries"
#: seconds between refreshes while a try is queued or running
REFRESH_S = 0.5
#: a finished run can be tried when it holds one of these
MODEL_DIRS = ("adapter", "adapters", "model")
BASE, RUN = "A base model", "A finished training run"
HISTORY, SHOWN, MESSAGE = "_try_history", "_try_shown", "_try_msg"
STATUS_COLOR = dict(queued="gray", starting="blue", running="blue", stopping="orange", finished="green")
STATUS_COLOR.update(failed="red", stopped="orange", lost="violet")
ACTIVE = ("queued", "starting", "running", "stopping")


# --------------------------------------------------------------------------- the job (no Streamlit)


def runs_folder() -> Path:
    """The runs folder the jobs queue uses ($TTFT_RUNS_DIR or ./runs), absolute."""
    return registry.JobConfig.from_env().root


def tries_root(root: Path) -> Path:
    return Path(root) / TRIES_DIR / "predictions"


def new_out(task_id: str, root: Path) -> Path:
    """A new, empty prediction folder for a try: ``<runs>/tries/predictions/<date>-<time>-<task>[-N]`` (named like
    the jobs' own folders)."""
    from ttft.runs.jobs import _new_run_path

    return _new_run_path(tries_root(root), task_id)


def model_runs(root: Path) -> list[registry.Job]:
    """Finished training runs of the runs folder that hold a model to try (``adapter/``, ``adapters/``,
    ``model/``), newest first."""
    return [
        j
        for j in registry.list_jobs(root)
        if j.status == "finished" and "mode" in j.config() and any((j.run_dir / d).exists() for d in MODEL_DIRS)
    ]


#: models under this many parameters generate on one CPU thread (see :func:`try_config`)
SMALL_MODEL = 20_000_000


def model_config(run: str | None = None, base_model: str | None = None) -> dict:
    """The transformers config.json of the model a try loads (a run's ``model/``, or the base model it was trained
    from; 'default' is the embedded model), or {} when it is not a local folder (a hub id)."""
    from ttft.engine.models import resolve_base

    if run:
        if (Path(run) / "model" / "config.json").exists():
            return read_json(Path(run) / "model" / "config.json", {}) or {}
        rc = read_json(Path(run) / "config.json", {}) or {}
        base_model = ((rc if isinstance(rc, dict) else {}).get("model") or {}).get("base_model")
    if not base_model:
        return {}
    cfg = read_json(Path(resolve_base(base_model)) / "config.json", {})
    return cfg if isinstance(cfg, dict) else {}


def small_model(cfg: dict) -> bool:
    """Whether a model config (config.json) describes a model under :data:`SMALL_MODEL` parameters (a Llama-like
    estimate: embeddings + attention and MLP weights per layer)."""
    try:
        h, layers = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"])
        inter, vocab = int(cfg.get("intermediate_size") or 4 * h), int(cfg.get("vocab_size") or 0)
    except (KeyError, TypeError, ValueError):
        return False
    return vocab * h + layers * (4 * h * h + 3 * h * inter) < SMALL_MODEL


def embedded_tokenizer(cfg: dict) -> bool:
    """Whether a model config has the embedded tokenizer's vocabulary (then its token counts are known here)."""
    from ttft.core.tokenizer import VOCAB

    return cfg.get("vocab_size") == len(VOCAB)


#: the task-based generation budget's margin per side over the largest output the train pairs suggest: 4 of the
#: 2,078 known test outputs of the bundled datasets need more (19 without a margin), the mean budget is 417 tokens
#: of the minimal format (against 934 for a 30x30 grid)
BUDGET_MARGIN = 1.25


def task_budget(task, fmt: str = "minimal") -> int:
    """Tokens per view (embedded tokenizer, format ``fmt``) for a grid as large as the largest train output, or the
    test input scaled as the train pairs scale (per side, whichever is larger), times :data:`BUDGET_MARGIN`, at most
    30x30, in either orientation (views rotate), + 4; the most over the test inputs. 0 (the engine's 30x30 budget)
    when it cannot be computed."""
    import math

    import numpy as np

    from ttft.core.gridtext import grid_to_text
    from ttft.core.tokenizer import fast_encoder

    try:
        outs = [p.output.shape for p in task.train]
        rh, rw = (max(o[k] / p.input.shape[k] for p, o in zip(task.train, outs)) for k in (0, 1))
        best = 0
        for p in task.test:
            (th, tw_), m = p.input.shape, BUDGET_MARGIN
            h = min(30, math.ceil(m * max(max(o[0] for o in outs), math.ceil(th * rh), th)))
            wd = min(30, math.ceil(m * max(max(o[1] for o in outs), math.ceil(tw_ * rw), tw_)))
            for a, b in ((h, wd), (wd, h)):
                probe = ((np.arange(a)[:, None] * 7 + np.arange(b)[None, :] * 3) % 10).astype(np.uint8)
                best = max(best, len(fast_encoder().encode(grid_to_text(probe, fmt))) + 4)
        return best
    except Exception:  # noqa: BLE001 — no train output, an unknown format: the engine's budget
        return 0


def run_format(run: str | None) -> str:
    cfg = read_json(Path(run) / "config.json", {}) if run else {}
    return str(((cfg if isinstance(cfg, dict) else {}).get("encoding") or {}).get("format") or "minimal")


def try_config(dataset: str, task: str, run=None, base_model=None, out=None, max_new_tokens=0, **opts) -> PredictConfig:
    """The prediction a try runs: one task, ``opts`` (views, sample, temperature, seed), the val loss (one forward
    pass), the default device. A small model (the embedded one: 4.8 M parameters) runs on one CPU thread: a second
    thread only adds synchronisation, and on a busy machine waits for the other core (4 views of a 276-token task,
    measured on 2 cores while other processes ran: 1.4 s on one thread, 4-25 s on two)."""
    threads = 1 if small_model(model_config(run, base_model)) else 0
    kw = dict(run=run, base_model=base_model, dataset=dataset, tasks=(task,), max_new_tokens=max_new_tokens)
    return PredictConfig(**kw, val_loss=True, threads=threads, out=str(out) if out else None, **opts)


def task_file(task, out: Path, dataset: str, version: str = "") -> str | None:
    """The task alone as a JSON file in the try's folder (``input/<task id>.json``, with ``try.json`` naming the
    dataset it comes from), or None when its id cannot be a file name. The job then parses one task instead of a
    whole dataset, twice (when it is validated and queued, and in the job's process): ~1 s each for a bundled
    dataset of 400 tasks, ~5 ms for one."""
    if safe_name(task.id) != task.id or task.id in (".", ".."):
        return None
    path = out / "input" / f"{task.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"train": [p.to_json() for p in task.train], "test": [p.to_json() for p in task.test]})
    write_json_atomic(
        out / "try.json", {"dataset": dataset, "dataset_version": version, "task": task.id, "task_file": str(path)}
    )
    return str(path)


def budget_for(task, model: dict, full_budget: bool = False) -> int:
    """The try's ``max_new_tokens``: :func:`task_budget` for a model with the embedded tokenizer (the embedded
    model, a run trained from it), else 0 (the engine's budget, a 30x30 grid, as for ``full_budget``). The
    engine's budget costs ~930 tokens per view that never stops, and the embedded model's views often do not."""
    if full_budget or not embedded_tokenizer(model_config(model.get("run"), model.get("base_model"))):
        return 0
    return task_budget(task, run_format(model.get("run")))


def launch_try(dataset: str, task, model: dict, opts: dict | None = None, root=None, version: str = "") -> dict:
    """Queue a try of ``task`` (a Task of ``dataset``; ``opts``: views, sample, temperature, seed, full_budget;
    validated first, ConfigError naming what is wrong) and return its history entry."""
    clicked, opts = time.time(), dict(opts or {})
    full = bool(opts.pop("full_budget", False))
    root = Path(root) if root is not None else runs_folder()
    out = new_out(task.id, root)
    try:
        spec = task_file(task, out, dataset, version) or dataset
        budget = budget_for(task, model, full)
        cfg = try_config(spec, task.id, model.get("run"), model.get("base_model"), out, budget, **opts)
        res = launch_prediction(cfg, registry.JobConfig.from_env(runs_dir=str(root)))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    label = model.get("label", model.get("run") or model.get("base_model"))
    entry = {"out": res["out"], "job": str(root / res["job"]), "task": task.id, "dataset": dataset, "model": label}
    entry.update(views=cfg.views, sample=cfg.sample, max_new_tokens=cfg.max_new_tokens, argv=res["argv"])
    return {**entry, "clicked": clicked, "launched": time.time()}


def try_state(entry: dict) -> tuple[str, dict]:
    """(status, details) of a try: the prediction folder's final status once it has one, else the job's
    (``queued`` with its position, ``starting`` while the process imports, ``running``, or how it ended without a
    final prediction status: ``failed``/``lost`` with the job's error)."""
    try:
        job = registry.get_job(entry["job"])
    except registry.JobError as e:
        job = None
        job_err = str(e)
    pst = read_json(Path(entry["out"]) / "status.json", {}) or {}
    if pst.get("status") in TERMINAL:
        return pst["status"], {**pst, "job": job.raw if job else {}}
    if job is None:
        return "lost", {"error": job_err}
    if job.status in TERMINAL or job.status == "lost":
        err = job.raw.get("error") or job.note or f"the job ended ({job.status}) without a prediction"
        tb = job.raw.get("traceback") or tail_text(job.path / STDERR_FILE, 30) or tail_text(job.path / SUPERVISOR, 30)
        return ("lost" if job.status == "lost" else "failed"), {"error": err, "traceback": tb, "job": job.raw}
    if job.status == "queued":
        return "queued", {"position": job.position, "kind": job.kind, "job": job.raw}
    return ("running" if pst.get("status") in ("running", "stopping") else "starting"), {**pst, "job": job.raw}


def _span(a, b) -> float | None:
    return float(a - b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else None


def phases(entry: dict, status: dict, metrics: dict) -> dict[str, float]:
    """Where the time of a finished try went, in seconds: ``total`` (click to the prediction's final status),
    ``launch`` (validating and queueing), ``queue`` (waiting for the slot, the supervisor's start), ``start``
    (the job's process: Python, imports, dataset), ``load`` (model load, val loss, files), ``generate``."""
    job, started = (status.get("job") or {}).get("started"), status.get("started")
    wall, gen = metrics.get("wall_seconds"), metrics.get("generate_seconds")
    ph = {"total": _span(status.get("ended"), entry.get("clicked"))}
    ph.update(launch=_span(entry.get("launched"), entry.get("clicked")), queue=_span(job, entry.get("launched")))
    ph.update(start=_span(started, job), load=_span(wall, gen), generate=_span(gen, 0.0))
    return {k: v for k, v in ph.items() if v is not None}


PHASE_LABELS = dict(launch="launch", queue="queue", start="process start and imports")
PHASE_LABELS.update(load="model load, val loss and files", generate="generation")


def phases_text(ph: dict[str, float]) -> str:
    return " · ".join(f"{PHASE_LABELS[k]} {ph[k]:.1f} s" for k in PHASE_LABELS if k in ph)


def _import_torch() -> None:
    from ttft.engine.models import choose_device

    with contextlib.suppress(Exception):  # a launch reports it
        choose_device("auto")


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Once per app process, import torch in the background: validating a prediction (its device) imports it,
    ~3 s the first time, which would otherwise fall on the first Try's click."""
    t = threading.Thread(target=_import_torch, name="ttft-try-warm-up", daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------- pickers


def task_picker(key: str, ds) -> str:
    """The task (``?task=`` on arrival, else the one last shown on any page, else the first), with its tokens."""
    got = nav.arrival("try")
    if got and got.get("task") in ds.tasks:
        st.session_state["try_task"] = got["task"]
    elif st.session_state.get("try_task") not in ds.tasks:
        qp = w.query_param("task") or nav.current().get("task")
        st.session_state["try_task"] = qp if qp in ds.tasks else ds.ids[0]
    stats = w.dataset_stats(key, ds)
    tokens = dict(zip(stats["id"], stats["tokens"]))
    label = lambda i: f"{i} · {tokens.get(i, '?')} tokens"  # noqa: E731
    tid = st.selectbox("Task", ds.ids, key="try_task", format_func=label, help="the try generates for its test input")
    w.set_query_params(task=tid)
    nav.remember(task=tid)
    return tid


def train_pairs(task) -> None:
    """The task's train pairs, small (what the model is shown before the test input)."""
    st.markdown(f"**Train pairs** ({len(task.train)}) · {len(task.test)} test input(s)")
    cols = st.columns(min(4, len(task.train)) or 1)
    for i, p in enumerate(task.train):
        with cols[i % len(cols)]:
            w.grid_image(p.input, cell=8, caption=f"{i + 1} in · {pv.shape_text(p.input)}")
            if p.output is not None:
                w.grid_image(p.output, cell=8, caption=f"{i + 1} out · {pv.shape_text(p.output)}")


def model_picker(root: Path, task: str) -> dict | None:
    """A finished training run (``?run=`` preselects it) or a base model; None when none can be used."""
    runs = model_runs(root)
    by_id = {j.id: j for j in runs}
    qrun = w.query_param("run")
    if qrun in by_id and st.session_state.get("_try_qrun") != qrun:  # a new arrival with ?run=
        st.session_state["_try_qrun"] = qrun
        st.session_state["try_src"], st.session_state["try_run"] = RUN, qrun
    what = f"a finished training run of {root} (adapter/, adapters/<task>/ or model/), or a base model"
    src = st.radio("Model", [BASE, RUN], horizontal=True, key="try_src", help=what)
    if src == RUN:
        if not runs:
            st.info(f"No finished training run with a model in `{root}` yet: train one on the Fine-tune page.")
            return None
        if st.session_state.get("try_run") not in by_id:
            st.session_state["try_run"] = runs[0].id
        rid = st.selectbox(
            "Run", list(by_id), key="try_run", format_func=lambda i: f"{i} · {by_id[i].config().get('mode', '')}"
        )
        w.set_query_params(run=rid)
        j = by_id[rid]
        if (j.run_dir / "adapters").is_dir() and not (j.run_dir / "adapters" / safe_name(task)).is_dir():
            st.caption(f"This per-task run has no adapter for {task}: the try uses its base model.")
        return {"run": str(j.run_dir), "label": rid}
    w.set_query_params(run=None)
    what = "'default' (the embedded model, offline), a model folder, or a hub id (downloaded because you name it)"
    base = st.text_input("Base model", "default", key="try_base", help=what).strip()
    try:
        check_model_ready(base or "")
    except ConfigError as e:
        st.error(str(e))
        return None
    if not base:
        st.error("Enter a base model ('default' is the embedded one).")
        return None
    return {"base_model": base, "label": f"base model {base}"}


def try_options(task, model: dict | None) -> dict:
    """Views, greedy or sampled decoding (temperature), the seed of the views' colours and sampling, and the
    generation budget."""
    c = st.columns([1, 1, 1, 1, 2], vertical_alignment="bottom")
    what = "augmented views of the test input (view 0: the task itself); the two most voted grids are the attempts"
    views = c[0].number_input("Views", 1, 64, 4, key="try_views", help=what)
    decoding = c[1].radio("Decoding", ["greedy", "sample"], horizontal=True, key="try_decoding")
    temperature = c[2].number_input(
        "Temperature", 0.05, 5.0, 1.0, 0.05, key="try_temperature", disabled=decoding != "sample", help="with sample"
    )
    seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="try_seed", help="colour maps of the views and sampling")
    budget = budget_for(task, model) if model else 0
    what = (
        f"each view may generate a 30x30 grid (~930 tokens) instead of {budget} tokens (the largest output the train "
        f"pairs suggest, +{round(100 * (BUDGET_MARGIN - 1))}% per side): slower when views do not stop, but never "
        "cuts off a larger answer"
        if budget
        else "this model gets the engine's budget (a 30x30 grid)"
    )
    full = c[4].toggle("Full budget (30×30)", key="try_full_budget", disabled=not budget, help=what)
    opts = {"views": int(views), "sample": decoding == "sample", "temperature": float(temperature)}
    return {**opts, "seed": int(seed), "full_budget": bool(full)}


def launch(dataset: str, ds, task_id: str, model: dict, opts: dict, root: Path) -> None:
    """The Try button: queue the job, put it first in this session's tries and show it."""
    try:
        entry = launch_try(dataset, ds[task_id], model, opts, root=root, version=ds.version)
    except (ConfigError, OSError) as e:
        st.session_state[MESSAGE] = f"Not launched: {e}"
        return
    st.session_state.setdefault(HISTORY, []).insert(0, entry)
    st.session_state[SHOWN] = entry["out"]


def show_message() -> None:
    msg = st.session_state.pop(MESSAGE, None)
    if msg:
        st.error(msg)


# --------------------------------------------------------------------------- the result


def history() -> list[dict]:
    return st.session_state.get(HISTORY, [])


def _shown() -> dict | None:
    hs = history()
    return next((e for e in hs if e["out"] == st.session_state.get(SHOWN)), hs[0] if hs else None)


def _badge(att, truth) -> None:
    if att is None:
        st.badge("no attempt", color="gray")
    elif truth is None:
        st.badge("truth hidden", color="gray")
    elif same_grid(att, truth):
        st.badge("right", icon=":material/check:", color="green")
    else:
        st.badge("wrong", icon=":material/close:", color="red")
        if as_grid(att).shape != as_grid(truth).shape:
            st.badge(f"shape {pv.shape_text(att)} vs {pv.shape_text(truth)}", color="orange")


def _test_row(inp, truth, attempts, numbers: bool, votes: list[str] | None = None) -> None:
    """Test input, truth, attempt 1 and 2 (badge, and the cell diff of a wrong one); ``attempts`` None: pending."""
    cols = st.columns(4, gap="medium")
    cols[0].markdown(f"**Test input** · {pv.shape_text(inp)}")
    with cols[0]:
        w.grid_image(as_grid(inp), numbers=numbers)
    cols[1].markdown(f"**Truth** · {pv.shape_text(truth)}" if truth is not None else "**Truth** · hidden")
    if truth is not None:
        with cols[1]:
            w.grid_image(as_grid(truth), numbers=numbers)
    for a in range(2):
        with cols[2 + a]:
            if attempts is None:
                st.markdown(f"**Attempt {a + 1}** · …")
                continue
            att = attempts[a] if a < len(attempts) else None
            st.markdown(f"**Attempt {a + 1}** · {pv.shape_text(att)}{(votes or ['', ''])[a]}")
            if att is not None:
                w.grid_image(as_grid(att), numbers=numbers)
            _badge(att, truth)
            if att is not None and truth is not None and not same_grid(att, truth):
                pw.diff_image(att, truth, caption="wrong or missing cells crossed")


def _views_gallery(views: list[dict], numbers: bool) -> None:
    """Every view's candidate grid (in the task's frame), or its raw text when it could not be read as a grid."""
    views = sorted(views, key=lambda v: v["view"])
    per_row = min(8, max(4, len(views)))
    for start in range(0, len(views), per_row):
        cols = st.columns(per_row)
        for c, v in zip(cols, views[start : start + per_row]):
            with c:
                mark = "" if v.get("correct") is None else (" ✓" if v["correct"] else " ✗")
                st.caption(f"view {v['view']} · {pv.describe_spec(v.get('spec'))}{mark}")
                if v.get("grid") is not None:
                    w.grid_image(as_grid(v["grid"]), numbers=numbers)
                else:
                    st.caption(f"unanswered: {v.get('reason') or '?'}")
                    st.code(v.get("text") or "(nothing generated)", language=None)


def _result(entry: dict, ref: PredictionRef, numbers: bool) -> None:
    row = next((r for r in ref.tasks() if r["task"] == entry["task"]), None)
    if row is None:
        st.warning("The prediction finished without this task's result.")
        return
    views = ref.views()
    for t in row["tests"]:
        i = t["test_index"]
        if len(row["tests"]) > 1:
            st.markdown(f"##### Test {i + 1}")
        cands = t.get("candidates", [])
        votes = [f" · {cands[a]['votes']} of {t['n_views']} votes" if a < len(cands) else "" for a in range(2)]
        _test_row(t["input"], t.get("truth"), t["attempts"], numbers, votes)
        mine = [v for v in views if v["task"] == entry["task"] and v["test_index"] == i]
        st.markdown(f"**Every view** ({len(mine)})")
        _views_gallery(mine, numbers)
        with st.expander("Candidates and views as tables"):
            st.dataframe(pv.candidate_frame(t, mine), hide_index=True, width="stretch")
            vf = pv.view_frame(mine)
            vf["text"] = [v.get("text") for v in sorted(mine, key=lambda v: v["view"])]
            st.dataframe(vf, hide_index=True, width="stretch")
    m = row.get("metrics", {})
    if m.get("val_loss") is not None:
        st.caption(f"val loss {m['val_loss']:.4f} (mean loss on the test output's tokens)")


def _pending(entry: dict, numbers: bool) -> None:
    """The task's test input and truth while the try runs."""
    try:
        task = w.load_dataset(entry["dataset"])[entry["task"]]
    except Exception:  # noqa: BLE001 — the job reports a dataset that cannot be read
        return
    for i, p in enumerate(task.test):
        if len(task.test) > 1:
            st.markdown(f"##### Test {i + 1}")
        _test_row(p.input, p.output, None, numbers)


def _stop(job: str) -> None:
    try:
        jobs.stop(job, wait=False)
    except (registry.JobError, OSError) as e:
        st.session_state[MESSAGE] = str(e)


def _panel_body(entry: dict, status: str, info: dict, numbers: bool) -> None:
    head = st.columns([6, 1], vertical_alignment="center")
    sampled = "sampled" if entry.get("sample") else "greedy"
    budget = f", ≤ {entry['max_new_tokens']} tokens" if entry.get("max_new_tokens") else ""
    head[0].markdown(f"#### Task {entry['task']} · {entry['model']} · {entry['views']} views, {sampled}{budget}")
    head[1].badge(status, color=STATUS_COLOR.get(status, "gray"))
    if status in ACTIVE:
        waited = time.time() - entry["clicked"]
        pos = f"queued (position {info.get('position') or '?'} for the {info.get('kind') or 'cpu'} slot)"
        what = dict(queued=pos, starting="starting (Python and imports)", running="loading the model and generating")
        what = what.get(status, status)
        c = st.columns([6, 1], vertical_alignment="center")
        c[0].info(f"{what} · {waited:.1f} s since the click")
        c[1].button("Stop", key=f"try_stop_{entry['out']}", on_click=_stop, args=(entry["job"],))
        _pending(entry, numbers)
        return
    ref = read_prediction(entry["out"], registry.JobConfig.from_env().root)
    st.caption(f"prediction `{entry['out']}` · job `{Path(entry['job']).name}`")
    if status == "finished":
        ph = phases(entry, info, ref.metrics())
        if "total" in ph:
            st.markdown(f"**Result {ph['total']:.1f} s after the click** · {phases_text(ph)}")
        _result(entry, ref, numbers)
    else:
        st.error(f"{status.capitalize()}: {info.get('error') or info.get('note') or 'see the log'}")
        if info.get("traceback"):
            with st.expander("Traceback"):
                st.code(str(info["traceback"])[-4000:], language="text")
        if status == "stopped" and (Path(entry["out"]) / "tasks.jsonl").exists():
            _result(entry, ref, numbers)
    if ref.config.get("kind") == "predict":  # the Predictions page lists it (as the run "tries")
        params = {"run": ref.run_key, "pred": ref.name, "task": entry["task"]}
        st.page_link(
            "pages/4_Predictions.py", label="Open in Predictions", icon=":material/target:", query_params=params
        )


def result_panel(numbers: bool = False) -> None:
    """The shown try (the newest unless another is picked), refreshed every :data:`REFRESH_S` s while any try of
    this session is queued or running; when one ends, the whole page reruns (its list and refresh rate)."""
    hs = history()
    if not hs:
        st.info("Press **Try**: the attempts, the truth and the time from the click appear here.")
        return
    states = {e["out"]: try_state(e) for e in hs}
    active = any(s in ACTIVE for s, _ in states.values())
    signature = tuple((k, s) for k, (s, _) in states.items())

    @st.fragment(run_every=REFRESH_S if active else None)
    def _panel() -> None:
        entry = _shown()
        if entry is None:
            return
        now = {e["out"]: try_state(e) for e in history()}
        if tuple((k, s) for k, (s, _) in now.items()) != signature:
            st.rerun(scope="app")  # a try changed state: the list, the buttons and the refresh rate follow
        status, info = now[entry["out"]]
        with st.container(border=True):
            _panel_body(entry, status, info, numbers)

    _panel()


def history_list() -> None:
    """This session's tries, newest first; Show puts one in the panel."""
    hs = history()
    if len(hs) < 2:
        return
    st.subheader(f"This session's tries ({len(hs)})")
    for e in hs:
        status, info = try_state(e)
        c = st.columns([3, 3, 2, 2, 1], vertical_alignment="center")
        c[0].markdown(f"`{Path(e['out']).name}`")
        c[1].caption(f"{e['dataset']} · {e['model']} · {e['views']} views")
        c[2].badge(status, color=STATUS_COLOR.get(status, "gray"))
        if status == "finished":
            m = read_json(Path(e["out"]) / "metrics.json", {}) or {}
            s = m.get("summary") or {}
            ph = phases(e, info, m)
            solved = "solved" if s.get("solved") else ("not solved" if s.get("n_scored") else "truth hidden")
            c[3].caption(f"{solved} · {ph.get('total', 0):.1f} s")
        show = lambda o=e["out"]: st.session_state.__setitem__(SHOWN, o)  # noqa: E731
        c[4].button("Show", key=f"try_show_{e['out']}", disabled=e["out"] == (_shown() or {}).get("out"), on_click=show)
