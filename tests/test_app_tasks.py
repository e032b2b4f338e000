"""AppTest of the Tasks page: dataset choice, filters, gallery paging, task view, deep links."""

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/1_Tasks.py"


def tasks_page(**params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGE)
    for k, v in params.items():
        at.query_params[k] = v
    return at.run()


def gallery_ids(at) -> list[str]:
    return [b.label for b in at.button if b.key and b.key.startswith("open_")]


def test_gallery_pages_and_filters():
    at = tasks_page(dataset="arc-agi-1/evaluation")
    assert not at.exception
    ids = gallery_ids(at)
    assert len(ids) == 24 and "00576224" in ids
    assert all(im.proto.imgs[0].url.endswith(".png") for im in at.get("image"))
    assert "400 of 400 tasks" in at.caption[0].value or any("400 of 400" in c.value for c in at.caption)
    # id filter
    at.text_input(key="tasks_id_filter").input("0057").run()
    assert gallery_ids(at) == ["00576224"]
    # size filter: only tasks whose largest grid is at most 5 cells
    at.text_input(key="tasks_id_filter").input("").run()
    at.slider(key="tasks_side").set_value((1, 5)).run()
    small = gallery_ids(at)
    assert small and len(small) < 24
    at.number_input(key="tasks_page").set_value(1).run()
    assert not at.exception


def test_page_two_shows_other_tasks():
    at = tasks_page(dataset="arc-agi-1/evaluation")
    first = set(gallery_ids(at))
    at.number_input(key="tasks_page").increment().run()
    second = set(gallery_ids(at))
    assert len(second) == 24 and not first & second


def test_deep_link_task_view_prev_next_and_back():
    at = tasks_page(dataset="arc-agi-1/evaluation", task="009d5c81")
    assert not at.exception
    assert at.title[0].value == "Task 009d5c81"
    # 5 train + 1 test pairs, input and output each, all PNG
    imgs = at.get("image")
    assert len(imgs) == 12
    labels = [m.value for m in at.markdown]
    assert "**Train 1 input** · 14×14" in labels
    at.button(key="next").click().run()
    assert at.query_params["task"] == ["00dbd492"] or at.query_params["task"] == "00dbd492"
    assert at.title[0].value == "Task 00dbd492"
    at.button(key="prev").click().run()
    assert at.title[0].value == "Task 009d5c81"
    at.button(key="to_gallery").click().run()
    assert "task" not in at.query_params
    assert len(gallery_ids(at)) == 24


def test_cell_numbers_toggle_changes_images():
    at = tasks_page(dataset="arc-agi-1/evaluation", task="00576224")
    before = [im.proto.imgs[0].url for im in at.get("image")]
    at.toggle(key="tasks_numbers").set_value(True).run()
    after = [im.proto.imgs[0].url for im in at.get("image")]
    assert len(before) == len(after) and set(before).isdisjoint(after)


def test_unknown_task_in_link_is_reported():
    at = tasks_page(dataset="arc-agi-1/evaluation", task="zzzzzzzz")
    assert not at.exception
    assert any("zzzzzzzz" in e.value for e in at.error)
    assert len(gallery_ids(at)) == 24


def test_path_dataset_with_a_bad_task(tmp_path):
    good = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]}
    (tmp_path / "aaa.json").write_text(json.dumps(good))
    (tmp_path / "bbb.json").write_text(json.dumps({"train": [], "test": good["test"]}))
    at = tasks_page(dataset=str(tmp_path))
    assert not at.exception
    assert at.selectbox(key="ttft_dataset_choice").value.startswith("A file or folder path")
    assert gallery_ids(at) == ["aaa"]
    assert any("bbb.json" in t.value and "'train' is empty" in t.value for t in at.text)


def test_missing_path_is_an_error_not_a_traceback():
    at = tasks_page(dataset="/no/such/folder")
    assert not at.exception
    assert any("neither a bundled dataset" in e.value for e in at.error)


@pytest.mark.parametrize("name", ["arc-agi-2/evaluation"])
def test_switching_dataset_keeps_url_in_sync(name):
    at = tasks_page()
    at.selectbox(key="ttft_dataset_choice").set_value(name).run()
    assert not at.exception
    assert at.query_params["dataset"] in (name, [name])
    assert len(gallery_ids(at)) == 24


def test_a_pool_folder_browses_with_paged_pairs(tmp_path):
    pairs = [{"input": [[i % 10] * (1 + i % 3)], "output": [[(i + 1) % 10]]} for i in range(30)]
    pairs[4] = {"input": [[1, 2], [3]], "output": [[1]]}  # a bad pair: skipped and named
    (tmp_path / "p1.json").write_text(json.dumps(pairs))
    (tmp_path / "p2.json").write_text(json.dumps(pairs[5:]))
    at = tasks_page(dataset=str(tmp_path))
    assert not at.exception
    assert gallery_ids(at) == ["p1", "p2"]
    assert any("p1.json" in t.value and "pair 4" in t.value and "ragged" in t.value for t in at.text)
    at = tasks_page(dataset=str(tmp_path), task="p1")
    assert not at.exception
    assert any("a pool of 29 pairs" in c.value for c in at.caption)
    assert any("Pairs 1–12 of 29" in c.value for c in at.caption)
    labels = [m.value for m in at.markdown]
    assert "**Pair 1 input** · 1×1" in labels and "**Pair 12 output** · 1×1" in labels
    assert len(at.get("image")) == 24 and not any("Test" in s.value for s in at.subheader)
    at.number_input(key="tasks_pool_page_p1").set_value(3).run()
    assert any("Pairs 25–29 of 29" in c.value for c in at.caption)
    assert len(at.get("image")) == 10 and "**Pair 29 input** · 1×3" in [m.value for m in at.markdown]
