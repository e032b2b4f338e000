"""Tasks: browse a dataset, filter it, open a task with all its pairs."""

import streamlit as st

from ttft.core.catalog import TaskFilter, neighbours, page_count, page_slice
from ttft.ui import navigation as nav
from ttft.ui import task_view as tv
from ttft.ui import widgets as w

w.page_frame("Tasks")

picked = w.dataset_picker()
if picked is None:
    st.title("Tasks")
    st.stop()
key, ds = picked
stats = w.dataset_stats(key, ds)

# ---------------------------------------------------------------- filters
sb = st.sidebar
sb.subheader("Filter")
tok_max = int(stats["tokens"].max())
train_max = max(1, int(stats["n_train"].max()))
flt = TaskFilter(
    id_contains=sb.text_input("Task id contains", key="tasks_id_filter"),
    max_side=sb.slider("Largest grid side", 1, 30, (1, 30), key="tasks_side"),
    n_train=sb.slider("Train pairs", 1, max(2, train_max), (1, max(2, train_max)), key=f"tasks_ntrain_{key}"),
    tokens=sb.slider("Tokens (1 per cell + 1 per row)", 0, tok_max, (0, tok_max), step=10, key=f"tasks_tokens_{key}"),
)
shown = flt.apply(stats)
ids = shown["id"].tolist()
numbers = sb.toggle("Cell numbers", key="tasks_numbers", help="Draw each cell's colour number on it")

task_id = w.query_param("task")
if task_id is not None and task_id not in ds.tasks:
    st.error(f"Task {task_id!r} is not in dataset {key!r}.")
    task_id = None


def open_task(tid: str | None) -> None:
    w.set_query_params(task=tid)


# ---------------------------------------------------------------- task view
if task_id is not None:
    task = ds[task_id]
    s = task.stats()
    order = ids if task_id in ids else ds.ids
    prev_id, next_id = neighbours(order, task_id)
    top = st.columns([6, 1, 1, 1], vertical_alignment="bottom")
    top[0].title(f"Task {task_id}")
    top[1].button("← Gallery", on_click=open_task, args=(None,), key="to_gallery")
    top[2].button("◀ Prev", on_click=open_task, args=(prev_id,), disabled=prev_id is None, key="prev")
    top[3].button("Next ▶", on_click=open_task, args=(next_id,), disabled=next_id is None, key="next")
    pos = f"{order.index(task_id) + 1} of {len(order)}" if task_id in order else ""
    st.caption(
        f"{key} · {pos} · {tv.task_caption(task)} · largest {s.max_height}×{s.max_width} · "
        f"{s.tokens} tokens" + ("" if task.pool else f" · test outputs {'known' if s.test_outputs_known else 'hidden'}")
    )
    nav.remember(task=task_id)
    nav.next_steps(key, task_id)

    tv.show_pairs(task, numbers)
    st.stop()

# ---------------------------------------------------------------- gallery
st.title("Tasks")
per_page = int(st.sidebar.selectbox("Tasks per page", [24, 48, 96], key="tasks_per_page"))
n_pages = page_count(len(ids), per_page)
if st.session_state.get("tasks_page", 1) > n_pages:  # the filter shrank the list
    st.session_state["tasks_page"] = n_pages
head = st.columns([4, 1], vertical_alignment="bottom")
head[0].caption(f"{len(ids)} of {len(ds)} tasks in {key} match the filter")
page = head[1].number_input("Page", 1, n_pages, 1, key="tasks_page", help=f"{n_pages} pages of {per_page}")
if not ids:
    st.info("No task matches the filter.")
cols = st.columns(6)
for i, tid in enumerate(page_slice(ids, int(page), per_page)):
    row = shown.iloc[ids.index(tid)]
    with cols[i % 6].container(border=True):
        st.image(w.thumbnail(key, ds[tid]), output_format="PNG")
        st.button(
            tid,
            key=f"open_{tid}",
            on_click=open_task,
            args=(tid,),
            width="stretch",
            help=f"{row.n_train} train · {row.max_height}×{row.max_width} · {row.tokens} tokens",
        )
