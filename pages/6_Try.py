"""Try: generate for one task's test input with a finished run or a base model and a few views, and see the
attempts against the truth within seconds (a small `python -m ttft predict` job; this page only reads its folder).

Deep links: `/Try?dataset=arc-agi-1/evaluation&task=00576224` (and `&run=<run id>` to preselect a run).
"""

import streamlit as st

from ttft.ui import jobs_widgets as jw
from ttft.ui import try_widgets as tw
from ttft.ui import widgets as w

w.page_frame("Try")
tw.warm_up()
jw.keep_warm_worker()
root = tw.runs_folder()

st.title("Try a run on one task")
st.caption(
    "Pick a task and a model, press **Try**: a small prediction job (its own process, in the jobs queue) "
    "generates for the test input with a few augmented views and votes; the attempts appear here next to "
    f"the truth. Tries are kept in `{root / tw.TRIES_DIR}`."
)

picked = w.dataset_picker()
if picked is None:
    st.stop()
key, ds = picked
numbers = st.sidebar.toggle("Cell numbers", key="try_numbers", help="Draw each cell's colour number on it")

top = st.columns([2, 3], gap="large")
with top[0]:
    task_id = tw.task_picker(key, ds)
    model = tw.model_picker(root, task_id)
with top[1]:
    tw.train_pairs(ds[task_id])
opts = tw.try_options(ds[task_id], model)
if st.button("Try", type="primary", disabled=model is None, key="try_go", icon=":material/play_arrow:"):
    tw.launch(key, ds, task_id, model, opts, root)
tw.show_message()

tw.result_panel(numbers)
tw.history_list()
