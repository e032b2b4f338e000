import pandas as pd
import pytest

from ttft.core.catalog import TaskFilter, neighbours, page_count, page_slice


def frame():
    return pd.DataFrame(
        [
            {"id": "aa11", "n_train": 2, "max_height": 3, "max_width": 5, "tokens": 50},
            {"id": "bb22", "n_train": 4, "max_height": 30, "max_width": 10, "tokens": 3000},
            {"id": "AB33", "n_train": 3, "max_height": 10, "max_width": 10, "tokens": 900},
        ]
    )


def test_filters_combine():
    df = frame()
    assert TaskFilter(id_contains="ab").apply(df)["id"].tolist() == ["AB33"]
    assert TaskFilter(max_side=(1, 10)).apply(df)["id"].tolist() == ["aa11", "AB33"]
    assert TaskFilter(n_train=(3, 4), tokens=(0, 1000)).apply(df)["id"].tolist() == ["AB33"]
    assert TaskFilter().apply(df).shape[0] == 3


def test_bad_range_is_named():
    with pytest.raises(ValueError, match=r"TaskFilter.tokens: \(5, 1\)"):
        TaskFilter(tokens=(5, 1)).apply(frame())


def test_paging_and_neighbours():
    ids = [str(i) for i in range(50)]
    assert page_count(50, 24) == 3 and page_count(0, 24) == 1
    assert page_slice(ids, 3, 24) == ["48", "49"]
    assert page_slice(ids, 99, 24) == ["48", "49"]
    assert neighbours(ids, "0") == (None, "1")
    assert neighbours(ids, "49") == ("48", None)
    assert neighbours(ids, "x") == (None, None)
