"""Prediction metrics against hand-computed cases."""

import numpy as np
import pytest

from ttft.core.metrics import METRICS, mean_metrics, pixel_share, same_grid, score_output, summarize, task_metrics

T = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)  # the truth
ONE_OFF = np.array([[1, 2, 3], [4, 5, 0]], dtype=np.uint8)  # 5 of 6 cells right
WIDER = np.array([[1, 2, 3, 0], [4, 5, 6, 0]], dtype=np.uint8)  # wrong shape


def test_same_grid_and_pixels():
    assert same_grid(T, T.tolist()) and not same_grid(T, ONE_OFF) and not same_grid(T, None)
    assert not same_grid(T, WIDER)
    assert pixel_share(ONE_OFF, T) == pytest.approx(5 / 6)
    assert pixel_share(WIDER, T) == 0.0  # shapes differ: 0, not a partial overlap
    assert pixel_share(None, T) == 0.0
    assert pixel_share(T, T) == 1.0


def test_score_output_hand_computed():
    views = [T, ONE_OFF, None, WIDER]  # one right, one nearly, one unparseable, one of the wrong size
    m = score_output(views, [ONE_OFF, T], T, val_loss=0.25)
    assert m["accuracy"] == pytest.approx(1 / 4)
    assert m["pass_n"] == 1.0
    assert m["vote_1"] == 0.0  # attempt 1 is wrong
    assert m["pass_at_2"] == 1.0  # attempt 2 is right
    assert m["correct_pixels"] == pytest.approx((1 + 5 / 6 + 0 + 0) / 4)
    assert m["correct_size"] == pytest.approx(2 / 4)
    assert m["unanswered"] == pytest.approx(1 / 4)
    assert m["val_loss"] == 0.25


def test_score_output_nothing_right_and_all_unanswered():
    m = score_output([None, None], [None, None], T)
    assert m["unanswered"] == 1.0
    assert m["accuracy"] == m["pass_n"] == m["vote_1"] == m["pass_at_2"] == 0.0
    assert m["correct_pixels"] == m["correct_size"] == 0.0
    m = score_output([ONE_OFF], [ONE_OFF, None], T)
    assert m["vote_1"] == m["pass_at_2"] == 0.0 and m["correct_size"] == 1.0


def test_unknown_truth_scores_only_unanswered():
    m = score_output([T, None, None], [T, None], None)
    assert m["unanswered"] == pytest.approx(2 / 3)
    for k in ("accuracy", "pass_n", "vote_1", "pass_at_2", "correct_pixels", "correct_size", "val_loss"):
        assert m[k] is None, k


def test_task_then_dataset_means():
    a = score_output([T, T], [T, None], T, 0.1)  # right
    b = score_output([ONE_OFF, None], [ONE_OFF, None], T, 0.3)  # wrong
    task1 = task_metrics([a, b])  # two test outputs: mean of each
    assert task1["pass_at_2"] == 0.5 and task1["accuracy"] == 0.5 and task1["val_loss"] == pytest.approx(0.2)
    assert task1["solved"] == 0.0  # not every test output right
    task2 = task_metrics([a])
    assert task2["solved"] == 1.0
    task3 = task_metrics([score_output([None], [None], None)])  # hidden truth: not scored
    assert task3["solved"] is None and task3["pass_at_2"] is None and task3["unanswered"] == 1.0
    s = summarize({"t1": task1, "t2": task2, "t3": task3})
    assert s["n_tasks"] == 3 and s["n_scored"] == 2 and s["solved"] == 1
    assert s["pass_at_2"] == pytest.approx((0.5 + 1.0) / 2)  # mean over the scored tasks
    assert s["unanswered"] == pytest.approx((0.25 + 0.0 + 1.0) / 3)  # unanswered needs no truth
    assert s["val_loss"] == pytest.approx((0.2 + 0.1) / 2)


def test_mean_of_nothing_is_none():
    assert mean_metrics([]) == {k: None for k in METRICS}
    assert summarize({})["n_tasks"] == 0


def test_max_correct_pixels_and_any_correct_size_hand_computed():
    # arc24's evaluate_predicted_grids: the best share among views of the right shape; 1 when any has that shape
    m = score_output([ONE_OFF, None, WIDER], [ONE_OFF], T)
    assert m["max_correct_pixels"] == pytest.approx(5 / 6)
    assert m["any_correct_size"] == 1.0
    m = score_output([WIDER, None], [WIDER], T)  # nothing of the truth's shape
    assert m["max_correct_pixels"] == 0.0 and m["any_correct_size"] == 0.0
    m = score_output([ONE_OFF, T], [T], T)
    assert m["max_correct_pixels"] == 1.0 and m["correct_pixels"] == pytest.approx((5 / 6 + 1) / 2)
    assert score_output([T], [T])["max_correct_pixels"] is None  # no truth: not scored
    # averaged per task like the others: two test outputs of one task
    t = task_metrics([score_output([ONE_OFF], [ONE_OFF], T), score_output([WIDER], [WIDER], T)])
    assert t["max_correct_pixels"] == pytest.approx(5 / 12) and t["any_correct_size"] == 0.5
