"""The research loop across pages: the dataset and task the user is looking at travel with them.

Each page records what it shows with :func:`remember` (the dataset key — a bundled name or a path, uploads
included, since uploads are saved as files — and the task id). The sidebar links and the "next step" links of a
page carry them as query parameters, so every page opens on the same dataset and task, and a cold deep link to
any page reproduces what the user saw. :func:`arrival` tells a page which task it was sent with.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

_STATE = "_ttft_nav"
_PLACEHOLDER = "_ttft_nav_placeholder"
#: pages whose sidebar link carries the task too (the Tasks link carries only the dataset: it opens the gallery)
_TASK_PAGES = ("pages/2_Augmentations.py", "pages/3_Fine-tune.py", "pages/4_Predictions.py")


def current() -> dict[str, str]:
    """``{"dataset": key, "task": id}`` as last shown (either may be missing)."""
    return dict(st.session_state.get(_STATE, {}))


def remember(dataset: str | None = None, task: str | None = None) -> None:
    """Record the dataset (and task) a page shows, and redraw the sidebar links with them."""
    state = current()
    if dataset is not None:
        if state.get("dataset") != dataset:
            state.pop("task", None)
        state["dataset"] = dataset
    if task is not None:
        state["task"] = task
    st.session_state[_STATE] = state
    _draw_links()


def link_params(page: str, **extra: Any) -> dict[str, str]:
    """Query parameters of a link to ``page`` carrying the current dataset (and task, for pages that use one)."""
    state = current()
    params = {"dataset": state["dataset"]} if "dataset" in state else {}
    if "task" in state and page in _TASK_PAGES:
        params["task"] = state["task"]
    params.update({k: str(v) for k, v in extra.items() if v is not None})
    return params


def sidebar_links(pages: list[tuple[str, str, str]]) -> None:
    """The sidebar navigation (in a placeholder, redrawn by :func:`remember` when the page changes dataset/task)."""
    st.session_state[_PLACEHOLDER] = (st.sidebar.empty(), pages)
    _draw_links()


def _draw_links() -> None:
    got = st.session_state.get(_PLACEHOLDER)
    if got is None:
        return
    ph, pages = got
    with ph.container():
        for path, label, icon in pages:
            st.page_link(path, label=label, icon=icon, query_params=link_params(path) or None)


def arrival(page_key: str) -> dict[str, str] | None:
    """The dataset/task a page was opened with (``?dataset=…&task=…``), once per distinct arrival: a form that
    preselects them does it on the first run only and then leaves the user's edits alone."""
    qp = {k: st.query_params.get(k) for k in ("dataset", "task")}
    qp = {k: v for k, v in qp.items() if v}
    if not qp.get("task"):
        return None
    seen = f"_ttft_arrived_{page_key}"
    if st.session_state.get(seen) == qp:
        return None
    st.session_state[seen] = qp
    return qp


#: the next steps from a task: (page, label, icon, extra query parameters)
NEXT_STEPS = (
    ("pages/2_Augmentations.py", "Augment this task", ":material/shuffle:", {}),
    ("pages/3_Fine-tune.py", "Fine-tune on this task", ":material/tune:", {}),
    ("pages/6_Try.py", "Try a run on it", ":material/play_arrow:", {}),
    ("pages/4_Predictions.py", "Predict it (background job)", ":material/target:", {"new": "1"}),
)


def next_steps(dataset: str, task: str) -> None:
    """Links from a task to the next steps of the loop, with the dataset and task preselected there."""
    from pathlib import Path

    app_dir = Path(__file__).resolve().parents[2]
    steps = [s for s in NEXT_STEPS if (app_dir / s[0]).exists()]
    cols = st.columns(len(steps))
    for c, (page, label, icon, extra) in zip(cols, steps):
        c.page_link(page, label=label, icon=icon, query_params={"dataset": dataset, "task": task, **extra})


def preselect_form(cls: type, prefix: str, dataset_path: str = "dataset", tasks_path: str = "tasks") -> bool:
    """On arrival with ``?dataset=…&task=…``, put that dataset and task into a config form (once per arrival).
    Returns whether the page is on such an arrival (on every rerun of it, so a notice about it stays where it is and
    the widgets below keep their place: a notice shown once would shift them and reset the form's tabs)."""
    from ttft.ui import forms

    got = arrival(prefix)
    if got is None:
        return bool(st.query_params.get("task")) and st.session_state.get(f"_ttft_arrived_{prefix}") is not None
    values: dict[str, Any] = {tasks_path: [got["task"]]}
    if got.get("dataset"):
        values[dataset_path] = got["dataset"]
    forms.preset(cls, prefix, values)
    return True
