"""Experiments: sweeps (rows that differ in any training or prediction option) and the seed ablation — launch one,
watch it live, stop it, read its table and charts, compare several."""

import streamlit as st

from ttft.engine.experiment import experiments_root, list_experiments
from ttft.ui import experiment_view as ev
from ttft.ui import experiment_widgets as ew
from ttft.ui import widgets as w

w.page_frame("Experiments")
st.title("Experiments")
st.caption(
    "A sweep runs rows that differ in some options (a grid of values of any training or prediction option) with "
    "the same tasks and seeds: val loss, accuracy, pass@2, tasks better than the first row, and time per row. The "
    "seed ablation (per-task TTFT with n-1, + geometric, + colour permutations, the 'preserve original colours' "
    "and n-2 variants, against the untuned baseline) is a predefined sweep. Each stage runs as its own "
    "`python -m ttft …` job."
)

exps = list_experiments()
with st.expander("Launch an experiment", expanded=not exps):
    sweep_tab, ablation_tab = st.tabs(["Sweep", "Seed ablation"])
    with sweep_tab:
        ew.sweep_form()
    with ablation_tab:
        ew.launch_form()

if not exps:
    st.info(f"No experiment in {experiments_root()} yet.")
    st.stop()
names = [p.name for p in exps]
qp = w.query_param("experiment")
pick = st.selectbox("Experiment", names, index=names.index(qp) if qp in names else 0, key="exp_pick")
w.set_query_params(experiment=pick)
ev.panel(experiments_root() / pick)

if len(exps) > 1:
    with st.expander("Compare experiments"):
        ev.compare(exps)
