"""The Tasks page's task view: every pair of a task, or a pool's pairs (RE-ARC form) a page at a time."""

from __future__ import annotations

import streamlit as st

from ttft.core.catalog import page_count, page_slice
from ttft.core.data import Pair, Task
from ttft.ui import widgets as w

#: pairs of a pool shown per page
POOL_PAGE = 12


def task_caption(task: Task) -> str:
    """What the task holds, in words: "3 train, 1 test" or "a pool of 1000 pairs"."""
    if task.pool:
        return f"a pool of {task.n_pairs} pairs (no test pair: a finetune sample draws a few of them)"
    s = task.stats()
    return f"{s.n_train} train, {s.n_test} test"


def show_pair(label: str, pair: Pair, numbers: bool) -> None:
    with st.container(border=True):
        cols = st.columns([1, 1], gap="medium")
        h, wd = pair.input.shape
        cols[0].markdown(f"**{label} input** · {h}×{wd}")
        with cols[0]:
            w.grid_image(pair.input, numbers=numbers)
        if pair.output is None:
            cols[1].markdown(f"**{label} output** · hidden")
        else:
            oh, ow = pair.output.shape
            cols[1].markdown(f"**{label} output** · {oh}×{ow}")
            with cols[1]:
                w.grid_image(pair.output, numbers=numbers)


def _grid_of(pairs: list[tuple[str, Pair]], numbers: bool) -> None:
    cols = st.columns(2)
    for i, (label, pair) in enumerate(pairs):
        with cols[i % 2]:
            show_pair(label, pair, numbers)


def show_pairs(task: Task, numbers: bool) -> None:
    """A task's train pairs then its test pairs; a pool's pairs in pages of :data:`POOL_PAGE`."""
    if not task.pool:
        _grid_of([(f"Train {i + 1}", p) for i, p in enumerate(task.train)], numbers)
        st.subheader("Test")
        _grid_of([(f"Test {i + 1}", p) for i, p in enumerate(task.test)], numbers)
        return
    n_pages = page_count(task.n_pairs, POOL_PAGE)
    head = st.columns([4, 1], vertical_alignment="bottom")
    page = head[1].number_input(
        "Pairs page", 1, n_pages, 1, key=f"tasks_pool_page_{task.id}", help=f"{n_pages} pages of {POOL_PAGE} pairs"
    )
    first = (int(page) - 1) * POOL_PAGE
    shown = page_slice(list(range(task.n_pairs)), int(page), POOL_PAGE)
    head[0].caption(f"Pairs {first + 1}–{first + len(shown)} of {task.n_pairs}")
    _grid_of([(f"Pair {i + 1}", task.train[i]) for i in shown], numbers)
