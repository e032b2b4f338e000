"""The task view of the Predictions page, as a researcher reads it: the task's train pairs beside its test input,
truth and the two attempts (with badges and cell diffs that tell a wrong colour from a shape error), every candidate's
grid with its votes and scores, and the raw generated text of any view (the unanswered ones first, with the reason).
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from ttft.core.metrics import as_grid, same_grid
from ttft.runs.predictions import PredictionRef
from ttft.ui import navigation as nav
from ttft.ui import predict_explorer as px
from ttft.ui import predict_widgets as pw
from ttft.ui import widgets as w
from ttft.views import grids as viz
from ttft.views import predviz as pv

#: candidates drawn per test output (the table lists them all)
MAX_CANDIDATES = 24
#: unanswered views whose raw text is shown at once (the others through the view picker)
MAX_UNANSWERED = 6


@st.cache_data(max_entries=2000, show_spinner=False)
def _pair_png(inp: bytes, ishape: tuple, out: bytes | None, oshape: tuple | None, numbers: bool) -> bytes:
    i = np.frombuffer(inp, dtype=np.uint8).reshape(ishape)
    o = None if out is None else np.frombuffer(out, dtype=np.uint8).reshape(oshape)
    return viz.pair_png(i, o, numbers=numbers)


def _grid_png(g, numbers: bool = False, cell: int | None = None) -> bytes:
    a = as_grid(g).astype(np.uint8, copy=False)
    return w.grid_png(a.tobytes(), a.shape, numbers, cell)


def _train_task(ref: PredictionRef, task_id: str):
    """The task from the prediction's dataset (cached), or the reason it cannot be had."""
    spec = ref.config.get("dataset")
    if not spec:
        return None, "the prediction names no dataset"
    try:
        ds = w.load_dataset(spec)
    except Exception as e:  # noqa: BLE001 — a dataset that moved or broke: say so, show the rest
        return None, f"{spec} cannot be loaded ({e})"
    if task_id not in ds.tasks:
        return None, f"{task_id} is not in {spec} any more"
    return ds[task_id], None


def train_pairs(ref: PredictionRef, task_id: str, numbers: bool) -> None:
    task, why = _train_task(ref, task_id)
    if task is None:
        st.caption(f"Train pairs unavailable: {why}.")
        return
    items = []
    for k, p in enumerate(task.train, 1):
        png = _pair_png(p.input.tobytes(), p.input.shape, p.output.tobytes(), p.output.shape, numbers)
        items.append((png, f"pair {k}: {pv.shape_text(p.input)} → {pv.shape_text(p.output)}"))
    st.markdown(f"**Train pairs** ({len(task.train)}) · input → output")
    st.html(pv.gallery_html(items, height=150))


def _badges(att, truth) -> None:
    if att is None:
        st.badge("no attempt", color="gray")
        return
    if truth is None:
        return
    if same_grid(att, truth):
        st.badge("right", icon=":material/check:", color="green")
        return
    st.badge("wrong", icon=":material/close:", color="red")
    if as_grid(att).shape != as_grid(truth).shape:
        st.badge(
            f"shape mismatch: {pv.shape_text(att)} vs {pv.shape_text(truth)}",
            icon=":material/aspect_ratio:",
            color="orange",
        )


def _cand_caption(k: int, c: dict, n_views: int, truth) -> str:
    lp = c.get("mean_logprob")
    verdict = (
        ""
        if truth is None
        else (
            " · right"
            if same_grid(c["grid"], truth)
            else " · wrong shape"
            if as_grid(c["grid"]).shape != as_grid(truth).shape
            else " · wrong"
        )
    )
    return (
        f"#{k} · {c['votes']}/{n_views} votes · log-prob {'—' if lp is None else f'{lp:.3f}'} · "
        f"{pv.shape_text(c['grid'])}{verdict}"
    )


def candidates(t: dict, views: list[dict], numbers: bool) -> None:
    cands = t.get("candidates", [])
    st.markdown("**Candidates** (votes over the views, mean log-prob of the generated tokens)")
    st.dataframe(
        pv.candidate_frame(t, views),
        hide_index=True,
        width="stretch",
        column_config={"mean_logprob": st.column_config.NumberColumn(format="%.4f")},
    )
    if cands:
        shown = cands[:MAX_CANDIDATES]
        items = [
            (_grid_png(c["grid"], numbers), _cand_caption(k, c, t["n_views"], t.get("truth")))
            for k, c in enumerate(shown, 1)
        ]
        more = f" (the first {MAX_CANDIDATES} of {len(cands)})" if len(cands) > len(shown) else ""
        st.caption(f"Every candidate's grid{more}: votes, mean log-prob, shape, and whether it is the truth")
        st.html(pv.gallery_html(items, height=130))


def _view_text(v: dict) -> str:
    text = v.get("text")
    if text is None:
        return "(nothing generated)"
    return text if text.strip() else repr(text)


def views_block(t: dict, views: list[dict], task_id: str) -> None:
    """Every view: the table, the raw text of the unanswered ones (with the reason), and any view's raw text."""
    i = t["test_index"]
    unanswered = [v for v in sorted(views, key=lambda v: v["view"]) if v.get("unanswered")]
    if unanswered:
        with st.expander(f"Unanswered views ({len(unanswered)} of {t['n_views']}): raw text and reason", expanded=True):
            for v in unanswered[:MAX_UNANSWERED]:
                st.caption(
                    f"view {v['view']} · {pv.describe_spec(v.get('spec'))} · {v.get('tokens', 0)} tokens · "
                    f"why: {v.get('reason') or 'unknown'}"
                )
                st.code(_view_text(v), language=None)
            if len(unanswered) > MAX_UNANSWERED:
                st.caption(f"{len(unanswered) - MAX_UNANSWERED} more: pick them below.")
    with st.expander(f"Every view ({t['n_views']})"):
        st.dataframe(pv.view_frame(views), hide_index=True, width="stretch")
        if views:
            by = {v["view"]: v for v in views}
            k = st.selectbox(
                "Raw text of view",
                sorted(by),
                key=f"pred_view_{task_id}_{i}",
                format_func=lambda n: (
                    f"{n}: {pv.describe_spec(by[n].get('spec'))}" + (" (unanswered)" if by[n].get("unanswered") else "")
                ),
            )
            v = by[k]
            st.caption(
                f"{v.get('tokens', 0)} tokens generated after a {v.get('prompt_tokens') or '?'}-token prompt"
                + (f" · unanswered: {v.get('reason')}" if v.get("unanswered") else "")
            )
            st.code(_view_text(v), language=None)


def _not_found(ref: PredictionRef, task_id: str) -> None:
    st.error(
        f"Task {task_id!r} is not in prediction {ref.label}" + (" yet (it is still running)." if ref.live else ".")
    )
    c = st.columns([1, 1, 4])
    c[0].button("← All tasks", on_click=pw.open_task, args=(None,), key="to_table")
    params = {"new": "1", "task": task_id, **({"dataset": ref.config["dataset"]} if ref.config.get("dataset") else {})}
    c[1].page_link("pages/4_Predictions.py", label="Predict it", query_params=params)


def task_view(ref: PredictionRef, task_id: str, numbers: bool = False) -> None:
    rows = pw.tasks_of(ref)
    ids = [r["task"] for r in rows]
    r = next((x for x in rows if x["task"] == task_id), None)
    if r is None:
        _not_found(ref, task_id)
        return
    if ref.config.get("dataset"):
        nav.remember(dataset=ref.config["dataset"], task=task_id)
    k = ids.index(task_id)
    top = st.columns([6, 1, 1, 1], vertical_alignment="bottom")
    top[0].title(f"Task {task_id}")
    top[1].button("← All tasks", on_click=pw.open_task, args=(None,), key="to_table")
    top[2].button(
        "Prev",
        icon=":material/chevron_left:",
        on_click=pw.open_task,
        args=(ids[k - 1] if k else None,),
        disabled=k == 0,
        key="prev",
    )
    top[3].button(
        "Next",
        icon=":material/chevron_right:",
        on_click=pw.open_task,
        args=(ids[k + 1] if k + 1 < len(ids) else None,),
        disabled=k + 1 >= len(ids),
        key="next",
    )
    m = r["metrics"]

    def pct(key):
        return "—" if m.get(key) is None else f"{100 * m[key]:.0f}%"

    vl = "—" if m.get("val_loss") is None else f"{m['val_loss']:.4f}"
    st.caption(
        f"{ref.label} · {k + 1} of {len(ids)} · {'solved' if m.get('solved') else 'not solved'} · pass@2 "
        f"{pct('pass_at_2')} · accuracy {pct('accuracy')} · pixels {pct('correct_pixels')} · unanswered "
        f"{pct('unanswered')} · val loss {vl}" + (f" · adapter {r['adapter']}" if r.get("adapter") else "")
    )
    train_pairs(ref, task_id, numbers)
    views = pw.views_of(ref)
    for t in r["tests"]:
        i, truth = t["test_index"], t.get("truth")
        mine = views.get((task_id, i), [])
        st.subheader(f"Test {i + 1}")
        cols = st.columns(4, gap="medium")
        inp = as_grid(t["input"])
        cols[0].markdown(f"**Test input** · {pv.shape_text(inp)}")
        with cols[0]:
            w.grid_image(inp, numbers=numbers)
        cols[1].markdown(f"**Truth** · {pv.shape_text(truth)}" if truth is not None else "**Truth** · hidden")
        if truth is not None:
            with cols[1]:
                w.grid_image(as_grid(truth), numbers=numbers)
        cands = t.get("candidates", [])
        for a in range(2):
            att = t["attempts"][a] if a < len(t["attempts"]) else None
            with cols[2 + a]:
                votes = f" · {cands[a]['votes']} of {t['n_views']} votes" if a < len(cands) else ""
                st.markdown(f"**Attempt {a + 1}** · {pv.shape_text(att)}{votes}")
                if att is not None:
                    w.grid_image(as_grid(att), numbers=numbers)
                _badges(att, truth)
                if att is not None and truth is not None and not same_grid(att, truth):
                    pw.diff_image(att, truth)
        if any(a is not None and truth is not None and not same_grid(a, truth) for a in t["attempts"]):
            st.caption(pv.DIFF_LEGEND)
        candidates(t, mine, numbers)
        px.candidates_explorer(ref, t, mine, f"{task_id}_{i}")
        views_block(t, mine, task_id)
