"""Augmentations: a task's augmented views side by side, a gallery of variants, n-1 / n-2 tasks, and the exact text
and loss mask a model sees."""

import pandas as pd
import streamlit as st

from ttft.ui import augment_widgets as aw
from ttft.ui import widgets as w
from ttft.views import augview

w.page_frame("Augmentations")

picked = w.dataset_picker()
if picked is None:
    st.title("Augmentations")
    st.stop()
key, ds = picked
task_id = aw.task_picker(key, ds)
task = ds[task_id]
ctl = aw.controls()

head = st.columns([5, 1], vertical_alignment="bottom")
head[0].title(f"Augmentations · {task_id}")
head[1].page_link(
    "pages/1_Tasks.py",
    label="Open in Tasks",
    icon=":material/grid_view:",
    query_params={"dataset": key, "task": task_id},
)
s = task.stats()
st.caption(
    f"{key} · {s.n_train} train, {s.n_test} test · largest {s.max_height}×{s.max_width} · "
    f"test outputs {'known' if s.test_outputs_known else 'hidden'}"
)
if ctl.options is None:
    st.error(f"Augmentation options: {ctl.error}")
    st.stop()
tok, tok_label = aw.tokenizer(ctl.tokenizer_path, ctl.cfg.format)

res = augview.main_view(task, ctl.options, ctl.seed)
with st.container(border=True):
    aw.spec_block(res, task)

tabs = st.tabs(["Side by side", f"Gallery ({ctl.n_variants})", "n-1 / n-2 tasks", "Model text"])

with tabs[0]:
    if res.task is None:
        st.info("Nothing to compare: this view is skipped (see above). Change the seed, transform or steps.")
    else:
        aw.side_by_side(task, res, ctl.numbers)


def pick(seed: int) -> None:
    st.session_state["aug_seed"] = seed
    w.set_query_params(seed=seed)


with tabs[1]:
    seeds = augview.variant_seeds(ctl.seed, ctl.n_variants)
    st.caption(
        f"{len(seeds)} views drawn with seeds {seeds[0]}–{seeds[-1]} (the view above uses seed {ctl.seed}); "
        "each shows its first train pair."
        if seeds
        else "Set N above 0 in the sidebar to see variants."
    )
    variants = augview.gallery(task, ctl.options, ctl.seed, ctl.n_variants)
    cols = st.columns(4)
    for i, v in enumerate(variants):
        with cols[i % 4]:
            aw.gallery_card(task, v, pick)
    n_skip = sum(v.task is None for v in variants)
    if n_skip:
        st.caption(f"{n_skip} of {len(variants)} variants skipped (a grid over 30×30).")

with tabs[2]:
    source = task
    if res.task is not None and st.toggle(
        "Build from the augmented view",
        key="aug_lo_from_view",
        help="Leave pairs out of the augmented view instead of the original",
    ):
        source = res.task
    st.caption(
        f"Tokens with the {ctl.cfg.format} format, the {ctl.cfg.prompt} prompt and the {tok_label} tokenizer "
        f"(the longest test pair's sequence); fits = at most max_seq_len {ctl.cfg.max_seq_len:,}. Original "
        "test pairs are never used."
    )
    built = {}
    problem = aw.encoding_problem(ctl.cfg, tok)
    if problem:
        st.error(problem)
    for kind in augview.LEAVE_OUT if not problem else ():
        tasks, why = augview.leave_out(source, kind)
        st.markdown(f"**{kind}** · {len(tasks)} task(s)")
        if why:
            st.info(why)
            continue
        built.update({t.id: t for t in tasks})
        df = pd.DataFrame(augview.token_rows(tasks, ctl.cfg, tok))
        st.dataframe(
            df,
            hide_index=True,
            key=f"aug_table_{kind}",
            column_config={
                "tokens": st.column_config.NumberColumn(format="%d"),
                "fits": st.column_config.CheckboxColumn("fits max_seq_len"),
            },
        )
    if built:
        lo_id = st.columns([2, 3])[0].selectbox(
            "View one", list(built), index=None, key="aug_lo_view", placeholder="a leave-out task: its pairs and text"
        )
        if lo_id is not None:
            aw.pairs(built[lo_id], ctl.numbers)
            aw.text_view(built[lo_id], ctl.cfg, tok, key="aug_lo_test")

with tabs[3]:
    choices = (["augmented view"] if res.task is not None else []) + ["original task"]
    which = st.radio("Text of", choices, horizontal=True, key="aug_text_of")
    st.caption(f"Tokenizer: {tok_label}")
    aw.text_view(res.task if which == "augmented view" else task, ctl.cfg, tok, key="aug_text_test")
