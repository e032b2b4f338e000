"""The generation budget covers every real answer: no test output of the bundled datasets is longer than the
budget its views get (issue 14: the old estimate from train outputs cut off 19 of them)."""

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
