"""The strategy explorer of the Predictions page (computation in :mod:`ttft.views.strategies`): the **Strategies** tab
(which selection strategy solves each task, against the oracle: any candidate right) and, in the task view, every
candidate of a test output with its votes, scores per view, summed log-prob and its rank under each strategy."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ttft.runs.predictions import PredictionRef, read_prediction
from ttft.ui import predict_widgets as pw
from ttft.views import strategies as sv

_RANK_HELP = "rank (1 = attempt 1) this candidate would have under the strategy; blank: not computable here"
_SOLVED_HELP = "its attempts 1 and 2 solve every test output; blank: not computable for this prediction"


def _score_note(ref: PredictionRef) -> str:
    score = ref.config.get("score", "votes")
    poe = score in ("poe", "votes+poe")
    return f"This prediction chose its attempts by **{score}**." + (
        "" if poe else " poe and votes+poe need poe scores: predict with `--score poe` (or votes+poe) to compare them."
    )


@st.cache_data(max_entries=16, show_spinner=False)
def _task_frame(path: str, tasks_mtime: float, views_mtime: float) -> pd.DataFrame:
    ref = read_prediction(path)
    return sv.task_frame(pw.tasks_of(ref), pw.views_of(ref))


def task_frame_of(ref: PredictionRef) -> pd.DataFrame:
    """:func:`ttft.views.strategies.task_frame` of a prediction, cached on its files (~3 ms a task to compute)."""
    return _task_frame(
        str(ref.path), pw.mtime_of(ref.path / "tasks.jsonl"), pw.mtime_of(ref.path / "predictions.jsonl")
    )


def strategies_tab(ref: PredictionRef) -> None:
    """Per task: which strategy's attempts solve it, the oracle, and the tasks that selection loses."""
    frame = task_frame_of(ref)
    if frame.empty:
        st.info("No task with a known truth is done yet.")
        return
    st.caption(
        _score_note(ref) + " Oracle: some candidate is right on every test output (what a perfect selection of "
        "two would get); **lost**: the oracle solves it, this prediction's attempts do not."
    )
    summary = sv.summary_frame(frame)
    st.dataframe(
        summary,
        hide_index=True,
        column_config={"share": st.column_config.NumberColumn(format="percent")},
        key="pred_strat_summary",
    )
    only = st.toggle("Only the tasks selection loses", key="pred_strat_lost")
    shown = frame[frame["lost"]] if only else frame
    st.caption(f"{len(shown)} of {len(frame)} tasks with a known truth")
    cfg = {s: st.column_config.CheckboxColumn(s, help=_SOLVED_HELP) for s in sv.STRATEGIES}
    st.dataframe(shown, hide_index=True, width="stretch", column_config=cfg, key="pred_strat_table")
    c = st.columns([3, 1], vertical_alignment="bottom")
    tid = c[0].selectbox(
        "Open a task", shown["task"].tolist(), key="pred_strat_open", index=None, placeholder="task id…"
    )
    c[1].button("Open", key="pred_strat_open_btn", on_click=pw.open_task, args=(tid,), disabled=tid is None)


def candidates_explorer(ref: PredictionRef, t: dict, views: list[dict], key: str) -> None:
    """One test output's candidates under every strategy, and their scores per view."""
    with st.expander("Strategy explorer: every candidate's rank under each strategy"):
        st.caption(_score_note(ref))
        frame = sv.candidate_frame(t, views)
        cfg = {f"rank_{s}": st.column_config.NumberColumn(f"rank {s}", help=_RANK_HELP) for s in sv.STRATEGIES}
        cfg.update(
            logprob=st.column_config.NumberColumn("summed log-prob", format="%.3f"),
            poe=st.column_config.NumberColumn("poe", format="%.3f"),
            marc_votes=st.column_config.NumberColumn("marc votes", help="votes in MARC's pooled level-2 list"),
        )
        st.dataframe(frame, hide_index=True, width="stretch", column_config=cfg, key=f"pred_strat_c_{key}")
        st.markdown("**Scores per view** (poe: log-prob given each view's prompt; else of the views that made it)")
        st.dataframe(sv.view_score_frame(t, views), hide_index=True, width="stretch", key=f"pred_strat_v_{key}")
