"""The generation budget covers every real answer: no test output of the bundled datasets is longer than the
budget its views get (issue 14: the old estimate from train outputs cut off 19 of them)."""

import numpy as np
import pytest

from ttft.core.data import BUNDLED, load_dataset
from ttft.core.gridtext import FORMATS, grid_to_text
from ttft.core.tokenizer import fast_encoder
from ttft.engine.views import output_token_estimate


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_bundled_test_output_is_cut_off_by_the_budget(fmt):
    enc = fast_encoder()

    def count(text: str) -> int:
        return len(enc.encode(text))

    checked, cut = 0, []
    for name in BUNDLED:
        for task in load_dataset(name):
            for i, pair in enumerate(task.test):
                if pair.output is None:
                    continue
                need = count(grid_to_text(pair.output, fmt)) + 1  # + the end of sequence
                budget = output_token_estimate(task, i, fmt, count)
                checked += 1
                if need > budget:
                    cut.append((name, task.id, i, need, budget))
    assert checked > 1900 and cut == [], cut[:5]
    # the largest answers are among them (ad7e01d0 and bf45cf4b need 651 tokens in the minimal format)
    if fmt == "minimal":
        ad = load_dataset("arc-agi-1/evaluation")["ad7e01d0"]
        assert count(grid_to_text(ad.test[0].output, fmt)) + 1 <= output_token_estimate(ad, 0, fmt, count)


def _items_at(limit: int, **kw):
    from ttft.core.data import Pair, Task
    from ttft.core.encoding import EncodingConfig
    from ttft.core.tokenizer import build_embedded_tokenizer
    from ttft.engine.generate import Predictor
    from ttft.engine.models import ModelConfig
    from ttft.engine.predict import build_items
    from ttft.engine.predict_config import PredictConfig
    from ttft.engine.sources import Source

    g = (np.arange(25).reshape(5, 5) % 10).astype(np.uint8)
    task = Task("t", (Pair(g, g.T.copy()), Pair(g.T.copy(), g)), (Pair(g, g.T.copy()),))
    pred = Predictor(None, build_embedded_tokenizer(), "cpu", Source("base", ModelConfig(), EncodingConfig()), [2], 0)
    cfg = PredictConfig(base_model="default", dataset="arc-agi-1/evaluation", views=1, **kw)
    return build_items(task, cfg, pred, limit), pred


def test_a_prompt_too_long_for_the_whole_budget_is_generated_in_the_room_left():
    """The automatic budget (a 30x30 grid) is cut to the room under max_seq_len when that room still holds the
    task's largest grid; with less room, or with a budget the user set, the view is unanswered with the reason."""
    fmt = "minimal"
    (roomy,), pred = _items_at(100_000)
    prompt, full = len(roomy.prompt), roomy.max_new
    floor = len(pred.tokenizer.encode(grid_to_text(np.zeros((5, 5), np.uint8), fmt)))
    assert full > 600 and roomy.prompt is not None
    (cut,), _ = _items_at(prompt + 100)  # room 100 >= a 5x5 grid's 30 tokens + slack
    assert cut.prompt is not None and cut.max_new == 100 and cut.reason is None
    (short,), _ = _items_at(prompt + floor)  # room for the grid, not for its slack: unanswered
    assert short.prompt is None and "exceed max_seq_len" in short.reason
    (asked,), _ = _items_at(prompt + 100, max_new_tokens=200)  # the user's own budget is kept, never cut
    assert asked.prompt is None and "output (200)" in asked.reason
