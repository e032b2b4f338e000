"""Streamlit parts of the Experiments page: the launch forms of a sweep and of the seed ablation, generated from
their options' declarations (the sweep's shared options as a form, and one values field per swept option)."""

from __future__ import annotations

import time

import streamlit as st

from ttft.engine import commands
from ttft.engine.experiment import experiments_root
from ttft.engine.experiment_config import PRESETS, AblationConfig, SweepConfig
from ttft.engine.sweep_plan import LIST_SEP, SEP, resolve, sweepable
from ttft.options import ConfigError
from ttft.ui import forms

PREFIX = "exp"
SWEEP_PREFIX = "sweep"
TABS = ("Tasks", "Rows", "Training", "Prediction", "Hardware")
NO_PRESET = "(none: the grid alone)"


def _out_folder(key: str, name: str) -> str:
    """The folder of the next launch: fixed until it is launched, so the command shown is the one that runs."""
    if key not in st.session_state:
        st.session_state[key] = str(experiments_root() / time.strftime(f"{name}-%Y%m%d-%H%M%S"))
    return st.session_state[key]


def _launch(button_key: str, ok: bool, launch) -> None:
    if st.button("Launch", type="primary", disabled=not ok, key=button_key):
        try:
            job, out = launch()
        except (ConfigError, OSError) as e:
            st.error(f"Not launched: {e}")
        else:
            st.success(f"Queued as job {job.id}; results will appear in {out}.")


def launch_form() -> None:
    """Every option of the seed ablation, the exact command, and Launch (a background job)."""
    form = forms.config_form(AblationConfig, PREFIX, order=TABS, initial=AblationConfig(limit=20).to_json())
    cfg, error = forms.read_config(AblationConfig, form)
    out = _out_folder("_exp_out", "seed-ablation")
    if cfg is not None:
        try:
            commands.check_experiment_ready(cfg)
        except ConfigError as e:
            cfg, error = None, str(e)
    if cfg is None:
        st.error(error)
    else:
        st.code(commands.command_line(commands.experiment_argv(cfg, out)), language="bash", wrap_lines=True)

    def launch():
        job = commands.launch_experiment(cfg, out)
        st.session_state.pop("_exp_out", None)
        return job, out

    _launch("launch_ablation", cfg is not None, launch)


def _values_text(key: str) -> str:
    """A swept option's default as the values field's first text: its current value."""
    o = resolve(key).option
    if o.kind == "list":
        return ",".join(map(str, o.default or ()))
    return o.describe_default()


def grid_editor() -> tuple[list[str], str | None]:
    """The swept options (a multiselect of every option a row may set) and their values; the ``--grid`` specs
    and the preset."""
    c1, c2 = st.columns([1, 2])
    preset = c1.selectbox(
        "Preset rows",
        [NO_PRESET, *PRESETS],
        key=f"{SWEEP_PREFIX}._preset",
        help=(
            "a predefined sweep's rows (seed-ablation: the seed experiment's); with a grid, each preset row with every "
            "grid row"
        ),
    )
    keys = c2.multiselect(
        "Swept options",
        sweepable(),
        key=f"{SWEEP_PREFIX}._keys",
        help="a sweep option, ttft, or any training "
        "(train.…) or prediction (predict.…) option; the rows are every combination of their values",
    )
    grid = []
    cols = st.columns(3)
    for i, key in enumerate(keys):
        o = resolve(key).option
        sep = LIST_SEP if o.kind == "list" else SEP
        wkey = f"{SWEEP_PREFIX}._values.{key}"
        if wkey not in st.session_state:
            st.session_state[wkey] = _values_text(key)
        text = cols[i % 3].text_input(f"{key} values", key=wkey, help=f"{o.help}; values separated by '{sep}'")
        grid.append(f"{key}={text}")
    return grid, None if preset == NO_PRESET else preset


def sweep_form() -> None:
    """The sweep's shared options (the form of SweepConfig), the swept options and their values, the rows it
    makes, the exact command, and Launch (a background job)."""
    grid, preset = grid_editor()
    form = forms.config_form(SweepConfig, SWEEP_PREFIX, order=TABS, initial=SweepConfig(limit=10).to_json())
    cfg, error = forms.read_config(SweepConfig, form)
    out = _out_folder("_sweep_out", "sweep")
    argv = None
    if cfg is not None:
        try:
            argv = commands.sweep_argv(cfg, grid, out, preset)
            cfg, rows = commands.sweep_from_args(commands._parse(argv))  # read back as the job will
            commands.check_sweep_ready(cfg, rows, out)  # every row built and validated
        except ConfigError as e:
            argv, error = None, str(e)
    if argv is None:
        st.error(error)
    else:
        st.caption(f"{len(rows)} row(s): " + "; ".join(r.name for r in rows[:12]) + (" …" if len(rows) > 12 else ""))
        st.code(commands.command_line(argv), language="bash", wrap_lines=True)

    def launch():
        job = commands.launch_sweep(cfg, grid, out, preset)
        st.session_state.pop("_sweep_out", None)
        return job, out

    _launch("launch_sweep", argv is not None, launch)
