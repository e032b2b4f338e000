"""Streamlit parts of the Experiments page: the launch form of the seed ablation, generated from its options."""

from __future__ import annotations

import time

import streamlit as st

from ttft.engine import commands
from ttft.engine.experiment import experiments_root
from ttft.engine.experiment_config import AblationConfig
from ttft.options import ConfigError
from ttft.ui import forms

PREFIX = "exp"
TABS = ("Tasks", "Rows", "Training", "Prediction", "Hardware")


def _out_folder() -> str:
    """The folder of the next launch: fixed until it is launched, so the command shown is the one that runs."""
    if "_exp_out" not in st.session_state:
        st.session_state["_exp_out"] = str(experiments_root() / time.strftime("seed-ablation-%Y%m%d-%H%M%S"))
    return st.session_state["_exp_out"]


def launch_form() -> None:
    """Every option of the seed ablation, the exact command, and Launch (a background job)."""
    form = forms.config_form(AblationConfig, PREFIX, order=TABS, initial=AblationConfig(limit=20).to_json())
    cfg, error = forms.read_config(AblationConfig, form)
    out = _out_folder()
    if cfg is not None:
        try:
            commands.check_experiment_ready(cfg)
        except ConfigError as e:
            cfg, error = None, str(e)
    if cfg is None:
        st.error(error)
    else:
        st.code(commands.command_line(commands.experiment_argv(cfg, out)), language="bash", wrap_lines=True)
    if st.button("Launch", type="primary", disabled=cfg is None, key="launch_ablation"):
        try:
            job = commands.launch_experiment(cfg, out)
        except (ConfigError, OSError) as e:
            st.error(f"Not launched: {e}")
        else:
            st.session_state.pop("_exp_out", None)
            st.success(f"Queued as job {job.id}; results will appear in {out}.")
