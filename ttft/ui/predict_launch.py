"""The New-prediction form of the Predictions page: the model (a training run of the runs folder, or a bare base
model), every prediction option (generated from PredictConfig by :mod:`ttft.ui.forms`), the exact command, and
Launch (a ``python -m ttft predict`` background job, validated before it is queued).

Arrivals (once each, then the user's edits are kept): ``?run=<run folder>&new=1`` (the Fine-tune run panel) selects
that run as the model, even before it has any prediction, with its dataset and tasks from its config.json;
``?dataset=<key>&task=<id>&new=1`` (the Tasks page) preselects that dataset and task.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import streamlit as st

from ttft.engine import commands
from ttft.engine.predict import default_out_dir
from ttft.engine.predict_config import PredictConfig
from ttft.options import ConfigError
from ttft.runs import registry
from ttft.runs.predictions import PredictionRef, is_prediction_dir, run_key_of
from ttft.runs.rundir import read_json, runs_root
from ttft.ui import forms
from ttft.ui import navigation as nav
from ttft.ui import widgets as w

PREFIX = "pred_l"
SOURCES = ("a training run", "a base model")
BASES = ("embedded default", "local folder", "hub id")
RUN_PATH = "a run folder path…"


# --------------------------------------------------------------------------- training runs


def model_of_run(path: Path) -> str | None:
    """What a prediction of this run would use (``model/``, ``adapter/``, ``adapters/`` with N tasks), or None."""
    if (path / "model" / "config.json").exists():
        return "full fine-tune model/"
    if (path / "adapter" / "adapter_config.json").exists():
        return "LoRA adapter/"
    d = path / "adapters"
    n = sum(1 for p in d.iterdir() if (p / "adapter_config.json").exists()) if d.is_dir() else 0
    return f"{n} per-task adapters" if n else None


def is_training_run(path: Path) -> bool:
    cfg = read_json(Path(path) / "config.json")
    return isinstance(cfg, dict) and "mode" in cfg and isinstance(cfg.get("model"), dict)


def training_runs(root: Path) -> dict[str, str]:
    """The training runs of the runs folder that have a model to predict with: {folder: label}, newest first."""
    out = {}
    for j in registry.list_jobs(root):
        cfg = j.config()
        if not is_training_run(j.path) or j.status in ("queued",):
            continue
        model = model_of_run(j.path)
        if model is None:
            continue
        tasks = len(cfg.get("tasks") or [])
        out[str(j.path)] = (
            f"{j.id} · {cfg.get('mode')}{' per task' if cfg.get('per_task') else ''} · "
            f"{cfg.get('dataset')}{f' ({tasks} tasks)' if tasks else ''} · {model} · {j.status}"
        )
    return out


def _run_folder(q: str) -> Path:
    """A ``run`` query parameter as a folder: a path, or a run id in the runs folder."""
    p = Path(q).expanduser()
    return p if p.is_absolute() else runs_root() / p


def _initial(ref: PredictionRef | None) -> dict:
    """The form's first values: every default, the dataset of the prediction shown (the source is chosen above the
    form, which hides it)."""
    return PredictConfig(
        base_model="default", dataset=(ref.config.get("dataset") if ref else None) or "arc-agi-1/evaluation"
    ).to_json()


def _arrive(ref: PredictionRef | None) -> None:
    """Preselect what the page was sent with (``?run=`` or ``?dataset=&task=``), once per arrival."""
    if PREFIX + "._init" not in st.session_state:  # (a preset over PredictConfig() would fail: it has no source)
        forms.config_to_state(PredictConfig, PREFIX, _initial(ref))
    qrun = w.query_param("run")
    nav.preselect_form(PredictConfig, PREFIX)  # ?dataset=…&task=…
    if not qrun or st.session_state.get("_pred_l_arrived") == qrun:
        return
    st.session_state["_pred_l_arrived"] = qrun
    path = _run_folder(qrun)
    if not is_training_run(path):
        return  # a run key of predictions (not a training run): the form keeps its model
    st.session_state["pred_l_src"] = SOURCES[0]
    st.session_state["pred_l_run"] = str(path)
    rc = read_json(path / "config.json") or {}
    values: dict = {"tasks": list(rc.get("tasks") or [])}
    if rc.get("dataset"):
        values["dataset"] = rc["dataset"]
    forms.preset(PredictConfig, PREFIX, values)


# --------------------------------------------------------------------------- the model


def _use_as_run(path: str) -> None:
    st.session_state["pred_l_src"] = SOURCES[0]
    st.session_state["pred_l_run"] = RUN_PATH
    st.session_state["pred_l_run_path"] = path


def _run_source(runs: dict[str, str]) -> dict:
    arrived = st.session_state.get("pred_l_run")
    opts = list(runs)
    if arrived and arrived not in opts and arrived != RUN_PATH:
        opts.insert(0, arrived)
    opts.append(RUN_PATH)
    if st.session_state.get("pred_l_run") not in opts:
        st.session_state["pred_l_run"] = opts[0]
    sel = st.selectbox(
        "Training run",
        opts,
        key="pred_l_run",
        format_func=lambda p: runs.get(p) or (p if p == RUN_PATH else f"{p} (outside the list)"),
        help=f"Runs in {runs_root()} with a model to predict with (adapter/, adapters/ or model/)",
    )
    path = sel
    if sel == RUN_PATH:
        path = st.text_input("Run folder", key="pred_l_run_path", placeholder="/path/to/runs/<run id>").strip()
    if not path:
        return {"run": None}
    p = Path(path).expanduser()
    if not p.is_dir():
        st.error(f"{path}: no such folder")
    elif not is_training_run(p):
        st.error(
            f"{path} is not a training run folder (no config.json of `python -m ttft train`)"
            + ("; it is a prediction folder" if is_prediction_dir(p) else "")
        )
    else:
        rc = read_json(p / "config.json") or {}
        model = model_of_run(p)
        status = (read_json(p / "status.json") or {}).get("status", "unknown")
        st.caption(
            f"{rc.get('mode')} run on {rc.get('dataset')} ({len(rc.get('tasks') or []) or 'all'} tasks), "
            f"{rc.get('steps')} steps, base model {(rc.get('model') or {}).get('base_model')} · {status} · "
            + (f"predicted with its {model}" if model else "no adapter or model yet")
        )
    return {"run": str(p)}


def _base_source() -> dict:
    kind = st.radio(
        "Base model",
        BASES,
        key="pred_l_base_src",
        horizontal=True,
        help="A bare model without any fine-tuning (a baseline)",
    )
    if kind == BASES[0]:
        return {"base_model": "default"}
    text = st.text_input(
        "model folder" if kind == BASES[1] else "hub id",
        key="pred_l_base",
        placeholder="/path/to/model_folder" if kind == BASES[1] else "Qwen/Qwen2.5-0.5B-Instruct",
        help="a hub id is downloaded when the job starts (needs network)",
    ).strip()
    if text and is_training_run(Path(text).expanduser()):
        st.error(
            f"{text} is a training run folder, not a model: predict it as a training run (with its adapter or model)."
        )
        st.button("Use it as the training run", key="pred_l_use_run", on_click=_use_as_run, args=(text,))
        return {"base_model": None}
    return {"base_model": text or None}


# --------------------------------------------------------------------------- readiness and the command


@st.cache_data(ttl=5, max_entries=32, show_spinner=False)
def _problem(cfg_json: str) -> str | None:
    """Why the job would fail at once (run without a model, unknown task id, missing model folder …), or None."""
    import json

    try:
        commands.check_predict_ready(PredictConfig.from_json(json.loads(cfg_json)))
    except ConfigError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 — anything else the job would also hit: say it before queueing
        return f"{type(e).__name__}: {e}"
    return None


def _auto_name(cfg: PredictConfig) -> str:
    """A name fixed while the form is open (so the command shown is the one launched); a new one after a launch."""
    stamp = st.session_state.setdefault("_pred_l_stamp", time.strftime("%Y%m%d-%H%M%S"))
    return f"{stamp}-{cfg.views}v" + ("-sampled" if cfg.sample else "")


def final_config(cfg: PredictConfig) -> PredictConfig:
    """``cfg`` with its folder fixed: the name (given, or a time stamp) and ``out`` (under the run, or the
    baselines folder for a bare model), as :func:`ttft.engine.commands.launch_prediction` would fix them."""
    if cfg.out:
        return cfg
    named = replace(cfg, name=cfg.name or _auto_name(cfg))
    return replace(named, out=str(default_out_dir(named, named.dataset or "").absolute()))


# --------------------------------------------------------------------------- the form


def launch_form(ref: PredictionRef | None = None) -> None:
    """The model and every prediction option; the exact command; Launch (validated before it is queued)."""
    _arrive(ref)
    runs = training_runs(runs_root())
    if "pred_l_src" not in st.session_state:
        here = ref is not None and ref.source_run is not None and is_training_run(ref.source_run)
        st.session_state["pred_l_src"] = SOURCES[0] if (here or runs) else SOURCES[1]
        if here:
            st.session_state["pred_l_run"] = str(ref.source_run)
    src = st.radio(
        "Model",
        SOURCES,
        key="pred_l_src",
        horizontal=True,
        help="A training run's model (its adapter, per-task adapters or full fine-tune), or a bare model",
    )
    source = _run_source(runs) if src == SOURCES[0] else _base_source()
    form = forms.config_form(
        PredictConfig,
        PREFIX,
        order=("Tasks", "Views", "Decoding", "Hardware", "Output"),
        hide=("run", "base_model", "out"),
        initial=_initial(ref),
    )
    cfg, error = forms.read_config(
        PredictConfig, form, base={**PredictConfig().to_json(), "run": None, "base_model": None, **source}
    )
    final = None
    if cfg is not None:
        final = final_config(cfg)
        error = _problem(json_of(final))
    if error:
        st.error(error)
    if final is not None:
        argv = commands.predict_argv(final)
        st.markdown("**The command** (the job runs exactly this):")
        st.code(commands.command_line(argv), language="bash", wrap_lines=True)
        out = Path(final.out)
        if is_prediction_dir(out):
            st.warning(f"{out} already holds a prediction: launching rewrites it.")
    if st.button("Launch prediction", type="primary", disabled=final is None or bool(error), key="pred_l_go"):
        try:
            res = commands.launch_prediction(final)
        except (ConfigError, OSError) as e:
            st.error(f"Not launched: {e}")
            return
        st.session_state.pop("_pred_l_stamp", None)
        out = Path(res["out"])
        st.session_state["_pred_msg"] = (
            "success",
            f"Launched {res.get('job') or 'the job'}: "
            f"`{commands.command_line(res['argv'])}`. Its progress is shown here.",
        )
        for k in ("pred_run", "pred_name"):
            st.session_state.pop(k, None)
        w.set_query_params(new=None, task=None, run=run_key_of(out), pred=out.name)
        st.rerun()


def json_of(cfg: PredictConfig) -> str:
    import json

    return json.dumps(cfg.to_json(), sort_keys=True)


def new_prediction_page(refs: list[PredictionRef], ref: PredictionRef | None) -> None:
    """The page in New-prediction mode (``?new=1``, or no prediction yet)."""
    if refs:
        c = st.columns([6, 1], vertical_alignment="bottom")
        c[0].title("New prediction")
        c[1].button(
            "← Predictions",
            key="pred_l_back",
            on_click=w.set_query_params,
            kwargs={
                "new": None,
                "task": None,
                "dataset": None,
                "run": None,
                "pred": None,
            },  # the picker keeps its choice
        )
    else:
        st.title("Predictions")
        st.info(
            "No predictions yet in the runs folder. Launch one below, or run "
            "`python -m ttft predict --run RUN_DIR` (or `--base-model default --dataset …`)."
        )
    st.markdown(
        "Predict in the background (a `python -m ttft predict` job; it keeps running when the tab closes). "
        "It is listed on this page at once, with its progress per task."
    )
    launch_form(ref)
