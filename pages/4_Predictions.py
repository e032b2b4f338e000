"""Predictions: a run's predictions against the truth — live status with progress and Stop, summary, downloads, the
per-task table, which selection strategy solves each task (the strategy explorer), the task view (train pairs,
attempts, cell diffs, every candidate and its rank under each strategy, raw text of the views), training curves,
before/after flips, run comparison, and launching a new prediction (``?new=1``)."""

import streamlit as st

from ttft.ui import jobs_widgets as jw
from ttft.ui import predict_compare as pc
from ttft.ui import predict_explorer as px
from ttft.ui import predict_launch as pl
from ttft.ui import predict_task_view as tv
from ttft.ui import predict_widgets as pw
from ttft.ui import widgets as w

w.page_frame("Predictions")
jw.keep_warm_worker()  # a prediction launched here starts from the warm worker: its first task sooner

refs = pw.all_predictions()
if w.query_param("new") is not None or not refs:
    pw.show_message()
    pl.new_prediction_page(refs, None)
    st.stop()

ref = pw.picker(refs)
numbers = st.sidebar.toggle("Cell numbers", key="pred_numbers", help="Draw each cell's colour number on it")

task_id = w.query_param("task")
if task_id is not None:
    tv.task_view(ref, task_id, numbers)
    st.stop()

top = st.columns([5, 1, 2], vertical_alignment="bottom")
top[0].title("Predictions")
with top[1]:
    pw.refresh_button()
top[2].button(
    "New prediction",
    key="pred_new",
    type="primary",
    on_click=w.set_query_params,
    kwargs={"new": "1", "task": None},
    help="Predict with a training run or a base model (background job)",
)
pw.show_message()


def _head(cur, cur_refs) -> None:
    st.caption(pw.caption(cur))
    pw.status(cur, len(pw.tasks_of(cur)))
    pw.other_live(cur_refs, cur)
    if not cur.pending:
        pw.summary(cur)


pw.live_block(ref, refs, _head, "head")
if ref.pending:
    st.info("Its folder is not written yet: the tasks appear here as they finish.")
    st.stop()
pw.downloads(ref)

tabs = st.tabs(["Tasks", "Strategies", "Charts", "Before / after", "Compare runs"])
with tabs[0]:
    pw.live_block(ref, [ref], lambda cur, _: pw.task_table(cur), "table", watch_all=False)
with tabs[1]:
    px.strategies_tab(ref)
with tabs[2]:
    pc.charts(ref, refs)
with tabs[3]:
    pc.before_after(ref, refs)
with tabs[4]:
    pc.compare(ref, refs)
