"""The strategy explorer (ttft/views/strategies.py, the Predictions page's Strategies tab and task view) on
predictions made by the real pipeline with an oracle in place of generation, built so that votes and MARC's voting
disagree:

24 views of task 0c786b71 (colours keep-bg, so only views sharing a transform can agree on a wrong grid): the three
identity views (0, 8, 16) answer a grid with a row missing (S), the three views of transform 3 (3, 11, 19) another
(W), views 1 and 2 (two other transforms) the truth (R), every other view garbage. Votes: S 3, W 3, R 2, so the
attempts are S and W and the task is lost. MARC: groups identity (S, S, S), transform 3 (W, W, W), view 1's and
view 2's (R, R, R) each, all (S, W, R): pooled S 4, W 4, R 7, so R is attempt 1."""

from pathlib import Path

import pytest
from _predfake import fake_run, make_prediction, tiny_model_dir
from streamlit.testing.v1 import AppTest

from ttft.runs.predictions import read_prediction
from ttft.runs.rundir import read_jsonl
from ttft.views import strategies as sv

ROOT = Path(__file__).resolve().parents[1]
RUN, TASK = "20261201-explore", "0c786b71"


def policy(tid: str, view: int) -> str:
    if view in (0, 8, 16, 3, 11, 19):
        return "shape"
    return "right" if view in (1, 2) else "garbage"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("explore_runs")
    run = fake_run(root / RUN, tiny_model_dir(tmp_path_factory.mktemp("explore_tiny")), tasks=(TASK,))
    with pytest.MonkeyPatch.context() as mp:
        for score in ("votes", "marc"):
            make_prediction(
                mp,
                run / "predictions" / score,
                run=str(run),
                views=24,
                tasks=(TASK,),
                policy=policy,
                score=score,
                val_loss=False,
            )
    return root


def lines(runs_dir, name):
    p = runs_dir / RUN / "predictions" / name
    views: dict = {}
    for v in read_jsonl(p / "predictions.jsonl"):
        views.setdefault((v["task"], v["test_index"]), []).append(v)
    return read_jsonl(p / "tasks.jsonl"), views


@pytest.mark.parametrize("name", ["votes", "marc"])
def test_strategy_frames(runs_dir, name):
    tasks, views = lines(runs_dir, name)
    frame = sv.task_frame(tasks, views)
    row = frame.iloc[0].to_dict()
    assert row["votes"] is False and row["marc"] is True and row["oracle"] is True
    assert row["poe"] is None and row["votes+poe"] is None  # no poe scores in these predictions
    assert row["lost"] is (name == "votes")  # the marc prediction's own attempts solve it
    test = tasks[0]["tests"][0]
    cands = sv.candidate_frame(test, views[(TASK, 0)])
    right = cands[cands["right"]].iloc[0]
    assert (right["votes"], right["rank_votes"], right["rank_marc"], right["marc_votes"]) == (2, 3, 1, 7)
    assert sorted(cands["marc_votes"]) == [4, 4, 7]
    s = sv.summary_frame(frame).set_index("strategy")
    assert s.loc["marc", "solved"] == 1 and s.loc["votes", "solved"] == 0 and s.loc["poe", "of"] == 0
    scores = sv.view_score_frame(test, views[(TASK, 0)])
    assert scores.shape == (3, 2 + 24)  # each candidate's log-prob in the views that made it
    assert scores["view 1"].notna().sum() == 1


def page(runs_dir, monkeypatch, **params) -> AppTest:
    monkeypatch.setenv("TTFT_RUNS_DIR", str(runs_dir))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/4_Predictions.py")
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def test_strategies_tab(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN, pred="votes")
    assert not at.exception
    summary = next(d.value for d in at.dataframe if "strategy" in d.value.columns)
    assert dict(zip(summary["strategy"], summary["solved"])) == {
        "votes": 0,
        "poe": 0,
        "votes+poe": 0,
        "marc": 1,
        "oracle": 1,
    }
    table = next(d.value for d in at.dataframe if "oracle" in d.value.columns and "task" in d.value.columns)
    assert table["task"].tolist() == [TASK] and bool(table["lost"].iloc[0])
    assert any("chose its attempts by **votes**" in c.value for c in at.caption)
    at.toggle(key="pred_strat_lost").set_value(True).run()
    assert any(c.value == "1 of 1 tasks with a known truth" for c in at.caption)
    at.selectbox(key="pred_strat_open").set_value(TASK).run()
    at.button(key="pred_strat_open_btn").click().run()
    assert at.title[0].value == f"Task {TASK}"


def test_task_view_explorer(runs_dir, monkeypatch):
    at = page(runs_dir, monkeypatch, run=RUN, pred="marc", task=TASK)
    assert not at.exception
    assert any(e.label.startswith("Strategy explorer") for e in at.expander)
    cands = next(d.value for d in at.dataframe if "rank_marc" in d.value.columns)
    assert sorted(cands["rank_marc"].tolist()) == [1, 2, 3] and sorted(cands["rank_votes"].tolist()) == [1, 2, 3]
    right = cands[cands["right"]].iloc[0]
    assert right["rank_marc"] == 1 and right["rank_votes"] == 3
    scores = next(d.value for d in at.dataframe if "view 23" in d.value.columns)
    assert len(scores) == 3
    # the prediction chose by marc: its attempt 1 is the truth
    ref = read_prediction(runs_dir / RUN / "predictions" / "marc")
    t = ref.tasks()[0]["tests"][0]
    assert t["attempts"][0] == t["truth"]


def test_poe_rankings_from_recorded_scores():
    """Candidates as a --score poe prediction writes them (poe order, with ranks and scores): votes 2, 2, 1 and poe
    sums -5, -1, -3 give poe order c1, c2, c0 and votes+poe c1, c0, c2 (the two-vote tie broken by poe)."""
    g = [[[k]] for k in range(3)]
    votes, poe = [2, 2, 1], [-5.0, -1.0, -3.0]
    cands = [
        {
            "grid": g[i],
            "votes": votes[i],
            "views": [i],
            "scores": {"votes": votes[i], "poe": poe[i]},
            "ranks": {"votes": i},
        }
        for i in (1, 2, 0)
    ]
    r = sv.rankings({"candidates": cands, "truth": g[0]})
    assert r["votes"] == g and r["poe"] == [g[1], g[2], g[0]] and r["votes+poe"] == [g[1], g[0], g[2]]
    assert r["marc"] is None  # no views' lines: their groups are unknown
    frame = sv.task_frame(
        [{"task": "t", "tests": [{"test_index": 0, "truth": g[0], "candidates": cands, "attempts": [g[1], g[2]]}]}], {}
    )
    row = frame.iloc[0].to_dict()
    assert (row["votes"], row["poe"], row["votes+poe"], row["oracle"], row["lost"]) == (True, False, True, True, True)
    assert row["marc"] is None
