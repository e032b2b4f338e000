"""Predictions: a run's predictions against the truth — summary, per-task table, task view with attempts, cell diffs
and candidates, training curves, before/after flips, run comparison, and launching a new prediction."""

import streamlit as st

from ttft.ui import predict_widgets as pw
from ttft.ui import widgets as w

w.page_frame("Predictions")

refs = pw.all_predictions()
if not refs:
    st.title("Predictions")
    st.info("No predictions yet in the runs folder. Launch one below, or run "
            "`python -m ttft predict --run RUN_DIR` (or `--base-model default --dataset …`).")
    pw.launch_form(None)
    st.stop()

ref = pw.picker(refs)
numbers = st.sidebar.toggle("Cell numbers", key="pred_numbers", help="Draw each cell's colour number on it")

task_id = w.query_param("task")
if task_id is not None:
    pw.task_view(ref, task_id, numbers)
    st.stop()

st.title("Predictions")
st.caption(pw.caption(ref))
pw.summary(ref)

tabs = st.tabs(["Tasks", "Charts", "Before / after", "Compare runs", "New prediction"])
with tabs[0]:
    pw.task_table(ref)
with tabs[1]:
    pw.charts(ref, refs)
with tabs[2]:
    pw.before_after(ref, refs)
with tabs[3]:
    pw.compare(ref, refs)
with tabs[4]:
    pw.launch_form(ref)
