"""Hardening (issue 13): bad files, corrupted runs, paths and faults never lose or expose anything.

One test (or one row of a parametrized table) per case: each asserts the message and that the good tasks or runs
still load. Faults that need a real training run (disk full, a damaged checkpoint) and the browser check of the
Host header are in tests/test_hardening_faults.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ttft.core import data, names
from ttft.core.data import TaskError, load_dataset
from ttft.runs import jobs, metrics, registry, rundir
from ttft.runs.rundir import write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
GOOD = {
    "train": [{"input": [[0, 1], [2, 3]], "output": [[3, 2], [1, 0]]}, {"input": [[5]], "output": [[5, 5]]}],
    "test": [{"input": [[1, 2, 3]], "output": [[3, 2, 1]]}],
}
DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "7" * 5000


def write(path: Path, obj) -> Path:
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def good_with(cell: str) -> str:
    """GOOD as text with its second train input's cell replaced by ``cell`` (raw JSON text)."""
    return json.dumps(GOOD).replace("[[5]]", f"[[{cell}]]", 1)


def messages(ds) -> list[str]:
    return [str(e) for e in ds.errors]


def one_line(msg: str) -> None:
    assert "Traceback" not in msg and "\n" not in msg, msg


# =========================================================================== loading never loses good data

#: bad files in a folder beside a good one: (how to make it, fragments its one message must hold)
FOLDER_CASES = {
    "deep_nesting": (lambda d: write(d / "deep.json", DEEP), ["deep.json", "nested too deeply"]),
    "deep_nesting_in_a_field": (
        lambda d: write(d / "deepf.json", json.dumps(GOOD).replace('"train": [', '"train": ' + DEEP + ', "x": [', 1)),
        ["deepf.json", "task deepf", "field 'train'", "nested too deeply"],
    ),
    "integer_5000_digits": (
        lambda d: write(d / "huge.json", good_with(HUGE)),
        ["huge.json", "task huge", "train pair 1", "field 'input'", "integer with 5000 digits"],
    ),
    "not_utf8": (
        lambda d: write(d / "latin.json", json.dumps(GOOD).encode() + b"\xe9\xff"),
        ["latin.json", "not UTF-8"],
    ),
    "dot_file_name": (lambda d: write(d / "..json", GOOD), ["..json", "task id '.'", "cannot be a folder name"]),
    "dotdot_file_name": (lambda d: write(d / "...json", GOOD), ["...json", "task id '..'"]),
    "broken_symlink": (
        lambda d: os.symlink(d / "gone.json", d / "link.json"),
        ["link.json", "broken symbolic link", "gone.json"],
    ),
    "folder_named_json": (lambda d: (d / "sub.json").mkdir(), ["sub.json", "a folder, not a task file"]),
    "kaggle_null_task": (
        lambda d: write(d / "k_challenges.json", '{"a": null, "b": ' + json.dumps(GOOD) + "}"),
        ["k_challenges.json", "task a", "got null"],
    ),
    "kaggle_dotdot_key": (
        lambda d: write(d / "k_challenges.json", {"..": GOOD, "b": GOOD}),
        ["k_challenges.json", "task '..'", "cannot be a folder name"],
    ),
    "kaggle_separator_key": (
        lambda d: write(d / "k_challenges.json", {"x/../y": GOOD, "b": GOOD}),
        ["task 'x/../y'", "cannot be a folder name"],
    ),
    "kaggle_deep_task": (
        lambda d: write(d / "k_challenges.json", '{"a": ' + DEEP + ', "b": ' + json.dumps(GOOD) + "}"),
        ["k_challenges.json", "task a", "nested too deeply"],
    ),
}


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_a_bad_file_in_a_folder_is_one_located_message_and_the_rest_loads(tmp_path, case):
    make, fragments = FOLDER_CASES[case]
    write(tmp_path / "good.json", GOOD)
    make(tmp_path)
    ds = load_dataset(tmp_path)
    assert "good" in ds.ids, messages(ds)
    if case.startswith("kaggle"):
        assert "b" in ds.ids, messages(ds)
    (msg,) = messages(ds)
    one_line(msg)
    for f in fragments:
        assert f in msg, (f, msg)


def test_an_unreadable_file_is_one_message_and_the_rest_loads(tmp_path, monkeypatch):
    write(tmp_path / "good.json", GOOD)
    bad = write(tmp_path / "secret.json", GOOD)
    if os.geteuid() == 0:  # root reads every file: make this one fail the way it does for a user
        real = Path.read_bytes

        def read_bytes(self):
            if self == bad:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    else:
        bad.chmod(0)
    ds = load_dataset(tmp_path)
    assert ds.ids == ["good"]
    (msg,) = messages(ds)
    assert "secret.json" in msg and "cannot read it (Permission denied)" in msg


def test_kaggle_solutions_are_checked_against_their_own_file(tmp_path):
    chal = {
        "t1": {"train": GOOD["train"], "test": [{"input": [[1]]}]},
        "t2": {"train": GOOD["train"], "test": [{"input": [[2]]}]},
    }
    p = write(tmp_path / "x_challenges.json", chal)
    write(tmp_path / "x_solutions.json", {"t1": [[[4, 10]]], "t2": [[[5]]], "zz": [[[1]]]})
    ds = load_dataset(p)
    assert ds.ids == ["t2"] and ds["t2"].test[0].output.tolist() == [[5]]
    msgs = messages(ds)
    bad_grid = next(m for m in msgs if "task t1" in m)
    assert bad_grid.startswith(f"file {tmp_path / 'x_solutions.json'}, task t1, test pair 0, field 'output'"), msgs
    assert "cell [0][1] is 10" in bad_grid
    assert any("x_solutions.json" in m and "task zz" in m and "not in x_challenges.json" in m for m in msgs), msgs
    assert ds.version == "kaggle + solutions"
    write(tmp_path / "x_solutions.json", {"t2": [[[5]]]})
    assert load_dataset(p).version == "kaggle + solutions (1 of 2 tasks)"


def test_solutions_for_other_tasks_are_reported_not_claimed(tmp_path):
    p = write(tmp_path / "y_challenges.json", {"t1": GOOD, "t2": GOOD})
    write(tmp_path / "y_solutions.json", {f"other{i}": [[[1]]] for i in range(30)})
    ds = load_dataset(p)
    assert sorted(ds.ids) == ["t1", "t2"]
    assert "+ solutions" not in ds.version and "none of the 30" in ds.version
    msgs = messages(ds)
    assert len(msgs) == 21 and "10 more solutions" in msgs[-1], msgs  # 20 named, then one line for the rest
    # in a folder, the solutions file is read with its challenges, not as tasks of its own
    ds = load_dataset(tmp_path)
    assert sorted(ds.ids) == ["t1", "t2"] and not any("y_solutions, " in m for m in messages(ds))


def test_an_unreadable_solutions_file_keeps_the_challenges(tmp_path):
    p = write(tmp_path / "z_challenges.json", {"t1": GOOD})
    write(tmp_path / "z_solutions.json", "{broken")
    ds = load_dataset(p)
    assert ds.ids == ["t1"] and ds.version == "kaggle (no solutions)"
    (msg,) = messages(ds)
    assert "z_solutions.json" in msg and "invalid JSON" in msg and "loaded without solutions" in msg


@pytest.mark.parametrize(
    "name, payload, fragment",
    [
        ("deep.json", DEEP.encode(), "nested too deeply"),
        ("huge.json", good_with(HUGE).encode(), "integer with 5000 digits"),
        ("..json", json.dumps(GOOD).encode(), "task id '.'"),
        ("bin.json", b"\x80\x81\x82 binary", "not UTF-8"),
    ],
)
def test_an_upload_gives_one_message(name, payload, fragment):
    with pytest.raises(TaskError) as ei:
        data.load_upload(name, payload)
    one_line(str(ei.value))
    assert fragment in str(ei.value) and name in str(ei.value)


def test_the_tasks_page_shows_messages_not_tracebacks(tmp_path):
    write(tmp_path / "good.json", GOOD)
    write(tmp_path / "deep.json", DEEP)
    write(tmp_path / "huge.json", good_with(HUGE))
    os.symlink(tmp_path / "gone.json", tmp_path / "link.json")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/1_Tasks.py")
    at.query_params["dataset"] = str(tmp_path)
    at.run()
    assert not at.exception, at.exception
    assert any("3 task(s) skipped" in e.label for e in at.expander)
    texts = " ".join(t.value for t in at.text)
    assert "nested too deeply" in texts and "5000 digits" in texts and "broken symbolic link" in texts
    # a folder that is nothing but bad files: the page says so in one line
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    write(only_bad / "deep.json", DEEP)
    at.query_params["dataset"] = str(only_bad)
    at.run()
    assert not at.exception and any("No valid task" in e.value for e in at.error)


def test_name_checks_refuse_what_would_leave_the_root():
    for bad in ("", " ", ".", "..", "a/b", "../x", "/abs", "a\\b", "tab\there", "nul\x00"):
        assert names.name_problem(bad) is not None, repr(bad)
        with pytest.raises(ValueError):
            rundir.child("/root", bad)
    assert names.name_problem("00576224") is None and rundir.child("/r", "a.b-c") == Path("/r/a.b-c")
    for s in ("", ".", "..", "...", "../..", "/", "a/../b"):
        safe = rundir.safe_name(s)
        assert names.name_problem(safe) is None and (Path("/r") / safe).parent == Path("/r"), (s, safe)


# =========================================================================== one corrupted run hides no other run

CORRUPTIONS = {
    "binary": b"\x00\x01\x02\xff\xfe binary",
    "latin1": '{"status": "finished", "note": "caf\xe9"}'.encode("latin-1"),
    "json_list": b"[1, 2, 3]",
    "empty": b"",
    "deep": DEEP.encode(),
    "huge_int": ('{"status": "finished", "step": ' + HUGE + "}").encode(),
    "step_abc": b'{"status": "finished", "step": "abc", "max_steps": 10}',
    "step_infinity": b'{"status": "finished", "step": Infinity, "max_steps": 10}',
    "pid_text": b'{"status": "running", "pid": "123"}',
    "a_directory": None,
}
JSON_FILES = ("status.json", "job.json", "config.json", "manifest.json", "result.json")


def good_run(root: Path, name: str, status: str = "finished") -> Path:
    d = root / name
    d.mkdir(parents=True)
    write_json_atomic(d / "config.json", {"mode": "ttft", "dataset": "arc-agi-1/evaluation"})
    write_json_atomic(d / "status.json", {"status": status, "step": 4, "max_steps": 4, "started": 1.0, "ended": 2.0})
    write_json_atomic(d / "manifest.json", {"device": "cpu"})
    (d / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": i, "time": 1.0 + i, "loss": 1.0 / i}) + "\n" for i in range(1, 5))
    )
    (d / "log.txt").write_text("started\n")
    return d


def corrupt(run: Path, fname: str, how: str) -> None:
    f = run / fname
    if f.exists():
        f.unlink()
    if CORRUPTIONS[how] is None:
        f.mkdir()
    else:
        f.write_bytes(CORRUPTIONS[how])


@pytest.mark.parametrize("fname", [*JSON_FILES, "metrics.jsonl", "log.txt"])
@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupted_file_marks_its_run_corrupt_and_the_others_list_as_usual(tmp_path, fname, how):
    root = tmp_path / "runs"
    good_run(root, "a-good")
    bad = good_run(root, "b-bad")
    if fname == "job.json":
        write_json_atomic(bad / "job.json", {"argv": ["--version"], "kind": "cpu"})
    corrupt(bad, fname, how)
    got = {j.id: j for j in registry.list_jobs(root)}
    assert got["a-good"].status == "finished" and got["a-good"].step == 4 and not got["a-good"].note
    j = got["b-bad"]
    text_file = fname in ("metrics.jsonl", "log.txt")
    if text_file and how != "a_directory":  # a damaged line is skipped, the run is fine
        assert j.status == "finished", (j.status, j.note)
    elif how in ("step_abc", "step_infinity", "pid_text") and fname != "status.json":
        assert j.status == "finished", (j.status, j.note)  # fields the registry does not read there
    elif how == "empty" and text_file:
        assert j.status == "finished"
    else:
        assert j.status == "corrupt", (j.status, j.note)
        assert fname in j.note, j.note
        one_line(j.note)
    # everything the app reads of it works
    j.to_json(), j.config(), j.kind, j.created, j.command(), j.max_steps
    m = metrics.read_metrics(j.run_dir / "metrics.jsonl")
    registry.progress(j, m)
    metrics.tail_text(j.path / "log.txt")
    if fname == "metrics.jsonl" and how == "a_directory":
        assert m.n == 0 and "cannot be read" in m.problem


def test_damaged_values_in_metrics_become_gaps_not_errors(tmp_path):
    f = tmp_path / "metrics.jsonl"
    lines = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": "abc"}, {"step": 3, "loss": None}, {"step": "x", "loss": 1}]
    f.write_text(
        "".join(json.dumps(r) + "\n" for r in lines)
        + '{"step": 5, "loss": Infinity}\n'
        + '{"step": 6, "loss": '
        + HUGE
        + "}\n"
        + DEEP
        + "\n"
        + "[1]\n"
        + '{"step": 7, "loss": 0.5}\n'
    )
    m = metrics.read_metrics(f)
    assert m.n == 7
    assert np.array_equal(m.col("step"), [1, 2, 3, np.nan, 5, 6, 7], equal_nan=True)
    assert np.array_equal(m.col("loss"), [2.0, np.nan, np.nan, 1.0, np.nan, np.nan, 0.5], equal_nan=True)


def test_jobs_list_and_the_fine_tune_page_survive_every_corruption(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    good_run(root, "0-good")
    for i, (fname, how) in enumerate(
        [
            (f, h)
            for f in ("status.json", "job.json", "config.json", "result.json")
            for h in ("binary", "json_list", "deep", "huge_int", "step_abc", "step_infinity", "a_directory")
        ]
    ):
        d = good_run(root, f"{i + 1:02d}-{fname}-{how}")
        corrupt(d, fname, how)
    d = good_run(root, "zz-metrics-folder")
    corrupt(d, "metrics.jsonl", "a_directory")
    os.symlink(tmp_path / "gone", root / "zz-dangling")
    env = {**os.environ, "TTFT_RUNS_DIR": str(root)}
    r = subprocess.run(
        [sys.executable, "-m", "ttft", "jobs", "list", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    listed = {j["id"]: j for j in json.loads(r.stdout.strip().splitlines()[-1])}
    assert listed["0-good"]["status"] == "finished"
    assert listed["zz-dangling"]["status"] == "corrupt" and "gone" in listed["zz-dangling"]["note"]
    assert listed["zz-metrics-folder"]["status"] == "corrupt"
    assert sum(j["status"] == "corrupt" for j in listed.values()) == 24  # the fields read are checked
    r = subprocess.run(
        [sys.executable, "-m", "ttft", "jobs", "list"], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0 and "corrupt" in r.stdout, r.stderr
    monkeypatch.setenv("TTFT_RUNS_DIR", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/3_Fine-tune.py")
    for rid in ("0-good", "01-status.json-binary", "zz-dangling", "zz-metrics-folder"):
        at.query_params["run"] = rid
        at.run()
        assert not at.exception, (rid, at.exception)


def test_a_corrupt_run_can_be_deleted_and_is_not_resumed(tmp_path):
    root = tmp_path / "runs"
    cfg = registry.JobConfig(runs_dir=str(root))
    good_run(root, "ok", status="stopped")
    bad = good_run(root, "bad", status="stopped")
    corrupt(bad, "status.json", "binary")
    with pytest.raises(registry.JobError, match="bad is corrupt .*status.json is not UTF-8.* cannot be resumed"):
        jobs.resume("bad", cfg)
    assert jobs.delete("bad", cfg) == bad.absolute() and not bad.exists()
    assert [j.id for j in registry.list_jobs(root)] == ["ok"]


# =========================================================================== one bad prediction hides no other

GOOD_TASK = {"task": "00576224", "metrics": {"pass_at_2": 1.0, "solved": True, "accuracy": 1.0}, "tests": []}


def fake_prediction(folder: Path, **config) -> Path:
    folder.mkdir(parents=True)
    cfg = {"kind": "predict", "dataset": "arc-agi-1/evaluation", "tasks": ["00576224"], "views": 1}
    write_json_atomic(folder / "config.json", {**cfg, **config})
    write_json_atomic(folder / "status.json", {"status": "finished", "done": 1, "total": 1})
    (folder / "tasks.jsonl").write_text(json.dumps(GOOD_TASK) + "\n")
    return folder


PREDICTION_DAMAGE = {
    # name: (file, content (None: a folder), state, what the problem says)
    "config_binary": ("config.json", b"\x00\xff\xfe binary", "corrupt", "config.json is not UTF-8 text"),
    "config_not_json": ("config.json", b'{"kind": "predict",', "corrupt", "config.json is not valid JSON (line 1"),
    "config_a_list": ("config.json", b'["predict"]', "corrupt", "config.json holds a JSON list, not an object"),
    "config_deep": ("config.json", DEEP.encode(), "corrupt", "config.json is nested too deeply"),
    "config_a_folder": ("config.json", None, "corrupt", "config.json is a folder, not a file"),
    "status_a_list": ("status.json", b"[1]", "corrupt", "status.json holds a JSON list, not an object"),
    "tasks_without_ids": (
        "tasks.jsonl",
        (json.dumps(GOOD_TASK) + "\n" + '{"metrics": {"solved": true}}\n{"task": "0c786b71"}\n[1]\n').encode(),
        "finished",
        "",
    ),
}


@pytest.mark.parametrize("case", sorted(PREDICTION_DAMAGE))
def test_a_damaged_prediction_is_listed_with_the_reason_and_hides_no_other(tmp_path, case):
    from ttft.runs import predictions

    fname, content, state, why = PREDICTION_DAMAGE[case]
    root = tmp_path / "runs"
    fake_prediction(root / "run-a" / "predictions" / "good", source={"kind": "adapter", "run": str(root / "run-a")})
    bad = fake_prediction(root / "run-b" / "predictions" / "bad")
    (bad / fname).unlink()
    if content is None:
        (bad / fname).mkdir()
    else:
        (bad / fname).write_bytes(content)
    refs = {r.name: r for r in predictions.find_predictions(root)}
    assert set(refs) == {"good", "bad"}, "the damaged one is listed, and the good one still is"
    good, b = refs["good"], refs["bad"]
    assert good.state == "finished" and good.summary()["solved"] == 1 and not good.problem
    assert good.source_run == root / "run-a"
    assert b.state == state, (b.state, b.problem)
    if why:
        assert b.problem.startswith(why), b.problem
        one_line(b.problem)
    else:
        assert not b.problem
    # everything the Predictions page reads of it works
    summary = b.summary()
    if case == "tasks_without_ids":
        assert (
            summary["n_tasks"] == 1 and summary["skipped_lines"] == 3 and [t["task"] for t in b.tasks()] == ["00576224"]
        )
    b.progress(), b.metrics(), b.views(), b.source_run, b.label, b.mtime
    predictions.partial_submission(b)


@pytest.mark.parametrize("source", ["a text", ["a", "list"], 3, None])
def test_a_prediction_whose_source_is_not_an_object_still_reads(tmp_path, source):
    from ttft.runs import predictions

    d = fake_prediction(tmp_path / "runs" / "r" / "predictions" / "p", source=source, run=str(tmp_path / "r"))
    (ref,) = predictions.find_predictions(tmp_path / "runs")
    assert ref.state == "finished" and ref.source == {}
    assert ref.source_run == tmp_path / "r", "the config's own run when the source says nothing usable"
    write_json_atomic(d / "config.json", {"kind": "predict", "source": {"run": 7}})
    assert predictions.read_prediction(d).source_run is None


def test_the_predictions_page_shows_a_corrupt_prediction_and_the_others(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    fake_prediction(root / "run-a" / "predictions" / "good", source="not an object")
    bad = fake_prediction(root / "run-b" / "predictions" / "bad")
    (bad / "config.json").write_bytes(b"\x00\xff binary")
    lines = fake_prediction(root / "run-c" / "predictions" / "lines")
    with open(lines / "tasks.jsonl", "a") as f:
        f.write('{"metrics": {}}\n{"task": "0c786b71"}\n')
    monkeypatch.setenv("TTFT_RUNS_DIR", str(root))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("pages/4_Predictions.py")
    at.query_params.update(run="run-b", pred="bad")
    at.run()
    assert not at.exception, at.exception
    assert any(e.value.startswith("This prediction is corrupt: config.json is not UTF-8 text") for e in at.error), [
        e.value for e in at.error
    ]
    for run, pred in (("run-a", "good"), ("run-c", "lines")):
        at.query_params.update(run=run, pred=pred)
        at.run()
        assert not at.exception, (run, at.exception)
        assert not at.error, [e.value for e in at.error]
        assert {m.label: m.value for m in at.metric}["solved"] == "1"
    assert any("2 line(s) of tasks.jsonl without a task id or metrics are left out" in c.value for c in at.caption)


# =========================================================================== paths stay inside the runs folder


@pytest.fixture
def runs(tmp_path, monkeypatch) -> registry.JobConfig:
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("TTFT_RUNS_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = registry.JobConfig(runs_dir=str(root), poll_s=0.1, stop_timeout_s=10)
    yield cfg
    for j in registry.list_jobs(root):
        if j.active and j.meta.get("argv"):
            jobs.stop(j, cfg, wait=True, timeout=10)


def cli(*args, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ttft", *args],
        capture_output=True,
        text=True,
        cwd=root.parent,
        env={**os.environ, "TTFT_RUNS_DIR": str(root), "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )


def model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def test_jobs_delete_refuses_a_folder_ttft_did_not_write(runs, tmp_path):
    outside = model_folder(tmp_path / "my-model")
    inside = model_folder(runs.root / "exported-model")
    for target in (str(outside), str(inside), "exported-model", "./my-model"):
        r = cli("jobs", "delete", target, "--yes", root=runs.root)
        assert r.returncode == 2, (target, r.stderr)
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith("error: no run") and "not a ttft run" in line, line
    assert (outside / "model.safetensors").exists() and (inside / "model.safetensors").exists()


@pytest.mark.parametrize("run", [".", "..", "", "../x", "./..", "runs/..", "\x1b[31m"])
def test_jobs_verbs_refuse_ids_and_paths_outside_the_runs_folder(runs, tmp_path, run):
    (tmp_path / "x").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for verb in ("resume", "stop", "delete"):
        with pytest.raises(registry.JobError):
            getattr(jobs, verb)(run, runs)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before, "nothing was written or removed"


def test_a_ttft_run_outside_the_runs_folder_is_taken_only_as_a_path(runs, tmp_path):
    elsewhere = good_run(tmp_path / "elsewhere", "r1", status="stopped")
    with pytest.raises(registry.JobError, match="no run 'r1'"):
        registry.get_job("r1", runs.root)
    assert registry.get_job(str(elsewhere), runs.root).status == "stopped"
    write_json_atomic(runs.root / "status.json", {"status": "finished"})  # even if the runs folder looks like a run
    with pytest.raises(registry.JobError, match="is the runs folder"):
        jobs.delete(str(runs.root), runs)
    assert runs.root.exists()


def test_deleting_a_linked_run_removes_the_link_and_keeps_the_folder(runs, tmp_path):
    target = good_run(tmp_path / "elsewhere", "linked")
    os.symlink(target, runs.root / "linked")
    assert [j.id for j in registry.list_jobs(runs.root)] == ["linked"]
    r = cli("jobs", "delete", "linked", "--yes", root=runs.root)
    assert r.returncode == 0, r.stderr
    assert "removed the link" in r.stderr and f"{target}, was kept" in r.stderr
    assert not (runs.root / "linked").is_symlink() and (target / "status.json").exists()


def test_a_stage_name_never_leaves_the_runs_folder(runs):
    from ttft.runs import process

    held = process.try_acquire_slot(runs.root, "cpu", 1, holder="test")  # the stage stays queued
    try:
        job = jobs.enqueue_stage(["--version"], "..", "cpu", runs)
        assert job.path.parent == runs.root.absolute() and job.id == "_.."
        jobs.stop(job, runs, wait=True)
    finally:
        os.close(held[0])


def test_a_run_dir_outside_the_runs_folder_is_listed_and_waits_in_its_queue(runs, tmp_path, tiny_model):
    from ttft.engine import commands
    from ttft.runs import process

    held = process.try_acquire_slot(runs.root, "cpu", 1, holder="test")
    try:
        argv = [
            "train",
            "--base-model",
            tiny_model,
            "--tasks",
            "00576224",
            "--steps",
            "1",
            "--device",
            "cpu",
            "--val",
            "none",
            "--threads",
            "1",
        ]
        out = commands.launch_command([*argv, "--run-dir", str(tmp_path / "outside" / "r")], runs)
        inner = commands.launch_command(argv, runs, name="inner")
        listed = {j.id: j for j in registry.list_jobs(runs.root)}
        assert set(listed) == {"r", inner.id}, listed
        assert (listed["r"].status, listed["r"].position) == ("queued", 1)
        assert (listed[inner.id].status, listed[inner.id].position) == ("queued", 2)
        assert (runs.root / "r").is_symlink() and registry.get_job(out.path, runs.root).position == 1
        for j in (out, inner):
            jobs.stop(j, runs, wait=True)
    finally:
        os.close(held[0])


@pytest.mark.parametrize(
    "argv, flag, under",
    [
        (["train", "--tasks", "00576224", "--steps", "1", "--run-dir", "{f}"], "--run-dir", False),
        (["train", "--tasks", "00576224", "--steps", "1", "--run-dir", "{f}/sub"], "--run-dir", True),
        (["experiment", "seed-ablation", "--out", "{f}"], "--out", False),
        (["predict", "--out", "{f}/x"], "--out", True),
    ],
)
def test_jobs_launch_refuses_a_folder_option_that_is_a_file_before_writing(tmp_path, argv, flag, under):
    from ttft.engine import commands

    runs = registry.JobConfig(runs_dir=str(tmp_path / "runs"))
    f = tmp_path / "a-file"
    f.write_text("x")
    argv = [a.format(f=f) for a in argv]
    with pytest.raises(registry.JobError) as ei:
        commands.launch_command(argv, runs)
    msg = str(ei.value)
    one_line(msg)
    value = next(a for a in argv if a.startswith(str(f)))
    assert f"{flag} {value}: " in msg and msg.endswith("not a folder"), msg
    assert (f"is inside {f}, which is a file" in msg) if under else ("is a file" in msg), msg
    assert f.read_text() == "x"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir()), "nothing written"
    # the app's launchers queue through the same check
    cmd = commands.Command(argv[0], argv, out=str(f) if flag == "--out" else None)
    cmd.run_dir = str(f) if flag == "--run-dir" else None
    with pytest.raises(registry.JobError, match=f"{flag} {f}: is a file, not a folder"):
        commands._queue(cmd, runs, None, "cpu")


def test_jobs_launch_with_a_file_as_run_dir_is_one_line_on_the_command_line(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    env = {**os.environ, "TTFT_RUNS_DIR": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "ttft", "jobs", "launch", "--", "train", "--steps", "1", "--run-dir", str(f)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: bad train command: --run-dir {f}: is a file, not a folder", r.stderr
    assert f.read_text() == "x"


def test_train_run_dir_pointing_at_a_file_is_one_line(tmp_path, tiny_model):
    f = tmp_path / "a-file"
    f.write_text("x")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ttft",
            "train",
            "--base-model",
            tiny_model,
            "--tasks",
            "00576224",
            "--steps",
            "1",
            "--val",
            "none",
            "--run-dir",
            str(f),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: run_dir:") and "is a file, not a folder" in line
    assert f.read_text() == "x"


# =========================================================================== metrics: downsampled, never repeated


def test_downsample_keeps_min_max_first_last_and_eval_lines():
    n = 100_000
    steps = np.arange(1, n + 1, dtype=float)
    loss = 2.0 / (1 + steps / 1000)
    loss[54_321] = 9.0  # a spike
    loss[77_777] = -1.0  # a dip
    ev = np.full(n, np.nan)
    ev[499::500] = 1.5  # every 500th line is an eval line
    loss[499::500] = np.nan
    m = metrics.Metrics(columns={"step": steps, "loss": loss, "eval_loss": ev}, n=n)
    t = time.perf_counter()
    d = m.downsample(4000)
    assert time.perf_counter() - t < 1.0
    assert 3000 < d.n <= 4000
    lo, kept = d.col("loss"), d.col("step")
    assert np.nanmax(lo) == 9.0 and np.nanmin(lo) == -1.0
    assert kept[0] == 1 and n - 1 in kept, "the first and the last training step"
    assert np.all(np.diff(kept) > 0), "rows stay in order"
    assert (~np.isnan(d.col("eval_loss"))).sum() == 200, "every eval line (there are few)"
    assert m.downsample(n) is m


def test_downsample_is_per_task():
    tasks = [t for t in ("a", "b", "c") for _ in range(3000)]
    steps = np.tile(np.arange(1, 3001, dtype=float), 3)
    loss = np.tile(np.linspace(3, 1, 3000), 3)
    m = metrics.Metrics(columns={"task_step": steps, "loss": loss}, tasks=tasks, n=len(tasks))
    d = m.downsample(900)
    assert d.n <= 900 + 6 and set(d.tasks) == {"a", "b", "c"}
    for t in "abc":
        rows = [i for i, x in enumerate(d.tasks) if x == t]
        ts = d.col("task_step")[rows]
        assert ts[0] == 1 and ts[-1] == 3000 and np.all(np.diff(ts) > 0)


def test_the_loss_figure_is_bounded_per_trace_and_keeps_one_curve_per_task():
    from ttft.views import charts

    n = 3000
    tasks = [t for t in ("a", "b", "c") for _ in range(n)]
    ts = np.tile(np.arange(1, n + 1, dtype=float), 3)
    loss = np.tile(np.linspace(3, 1, n), 3)
    loss[n + 1234] = 8.0  # a spike in task b
    m = metrics.Metrics(
        columns={
            "step": np.arange(1, 3 * n + 1, dtype=float),
            "task_step": ts,
            "loss": loss,
            "lr": np.full(3 * n, 1e-4),
        },
        tasks=tasks,
        n=3 * n,
    )
    fig = charts.loss_figure(m, max_points=900)
    curves = {t.name: t for t in fig.data if t.name in "abc" and t.showlegend is not False}
    assert set(curves) == {"a", "b", "c"}
    for name, tr in curves.items():
        assert len(tr.x) <= 310 and tr.x[0] == 1 and tr.x[-1] == n, (name, len(tr.x))
    raw_b = next(t for t in fig.data if t.name == "b" and t.showlegend is False)
    assert max(raw_b.y) == 8.0, "the spike survives the downsampling"
    assert all(len(t.x) <= 310 for t in fig.data if t.x is not None)
    one = charts.loss_figure(m, max_points=900, task="b")  # one task: the whole budget is its own
    assert 310 < len(one.data[0].x) <= 900 and max(one.data[0].y) == 8.0


def test_metrics_readers_are_bounded_and_reused(tmp_path):
    files = []
    for i in range(metrics.MAX_READERS + 5):
        f = tmp_path / f"m{i}.jsonl"
        f.write_text(json.dumps({"step": 1, "loss": float(i)}) + "\n")
        files.append(f)
    first = metrics.read_metrics(files[0])
    assert metrics.read_metrics(files[0]) is first, "an unchanged file: the same metrics, nothing copied"
    for f in files:
        metrics.read_metrics(f)
    assert len(metrics._READERS) <= metrics.MAX_READERS
    assert str(files[-1].absolute()) in metrics._READERS and str(files[1].absolute()) not in metrics._READERS


def test_read_metrics_of_100000_lines_is_fast_and_incremental(tmp_path):
    f = tmp_path / "metrics.jsonl"
    with open(f, "w") as fh:
        for i in range(1, 100_001):
            fh.write(
                json.dumps(
                    {
                        "step": i,
                        "time": 1e9 + i,
                        "elapsed": i * 0.1,
                        "loss": 1.0 / i,
                        "lr": 1e-4,
                        "grad_norm": 1.0,
                        "tokens": i * 500,
                        "tokens_per_second": 5e3,
                        "epoch": i / 1e3,
                    }
                )
                + "\n"
            )
    t0 = time.perf_counter()
    m = metrics.read_metrics(f)
    cold = time.perf_counter() - t0
    assert m.n == 100_000
    with open(f, "a") as fh:
        fh.write(json.dumps({"step": 100_001, "time": 1e9, "loss": 0.5}) + "\n")
    t0 = time.perf_counter()
    m = metrics.read_metrics(f)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    d = m.downsample()
    down = time.perf_counter() - t0
    print(
        f"read_metrics 100,000 lines: cold {cold:.2f} s, +1 line {warm * 1000:.1f} ms, downsample "
        f"{down * 1000:.1f} ms to {d.n} rows"
    )
    assert m.n == 100_001 and warm < 0.1 and cold < 10 and d.n <= metrics.MAX_POINTS + 2


def test_drop_steps_after_leaves_no_repeated_step(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text(
        "".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in range(0, 11))
        + '{"step": 3, "eval_loss": 1}\n{"step": 11, "lo'
    )  # an eval line, and a line cut by a kill
    assert metrics.drop_steps_after(f, 6) == 5
    assert [json.loads(x)["step"] for x in f.read_text().splitlines()] == [0, 1, 2, 3, 4, 5, 6, 3]
    moved = (tmp_path / metrics.SUPERSEDED_FILE).read_text().splitlines()
    assert len(moved) == 5 and moved[-1] == '{"step": 11, "lo'
    assert metrics.drop_steps_after(f, 6) == 0


# =========================================================================== faults without a real run


def test_a_full_disk_still_gets_the_final_status(tmp_path, monkeypatch):
    """The status write falls back on the space the run kept (the real thing, on a tiny tmpfs, is in
    test_hardening_faults.py; this one fakes ENOSPC so it runs anywhere)."""
    import errno

    from ttft.runs.lifecycle import RunLifecycle

    run = rundir.RunDir(tmp_path / "run")
    life = RunLifecycle(run).start()
    life.restore_signals()
    assert run.reserve_file.stat().st_size == rundir.RESERVE_BYTES
    real = rundir.write_json_atomic
    calls = []

    def full_until_reserve_released(path, obj):
        calls.append(path)
        if run.reserve_file.exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, obj)

    monkeypatch.setattr(rundir, "write_json_atomic", full_until_reserve_released)
    life.fail(OSError(errno.ENOSPC, "No space left on device", str(run.path / "checkpoint-20")))
    st = run.status()
    assert st["status"] == "failed" and st["error"].startswith("disk full: no space left on the device holding")
    assert "OSError: [Errno 28]" in st["error"] and len(calls) == 2
    # a library's write error on a (nearly) full disk is named too
    monkeypatch.setattr(rundir, "disk_free", lambda p: 4096)
    why = rundir.disk_full_error(
        RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"), run.path
    )
    assert why == f"disk full: 4 KB left on the device holding {run.path}"
    other = rundir.disk_full_error(ValueError("bad value"), run.path)
    assert other == f"the disk holding {run.path} is full (4 KB left)"
    monkeypatch.setattr(rundir, "disk_free", lambda p: 10 * rundir.DISK_FULL_BYTES)
    assert rundir.disk_full_error(ValueError("bad value"), run.path) is None
    assert (
        rundir.disk_full_error(
            RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"), run.path
        )
        is None
    ), "a write error on a disk with room is not 'disk full'"


def test_jobs_resume_on_a_full_disk_is_one_line(runs, monkeypatch):
    import errno

    d = good_run(runs.root, "stopped-run", status="stopped")
    write_json_atomic(d / "job.json", {"argv": ["--version"], "kind": "cpu"})

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(jobs, "write_json_atomic", full)
    with pytest.raises(registry.JobError, match=r"cannot queue stopped-run: No space left on device \(writing in "):
        jobs.resume("stopped-run", runs)


def test_a_lost_run_on_a_full_disk_says_so(runs, monkeypatch):
    good_run(runs.root, "was-running", status="running")
    monkeypatch.setattr(registry, "disk_free", lambda p: 10_000)
    (j,) = registry.list_jobs(runs.root)
    assert j.status == "lost" and "the disk holding it is full (9 KB free)" in j.note


# =========================================================================== messages


def test_a_model_folder_with_its_own_code_names_trust_remote_code(tmp_path):
    from ttft.engine.models import ModelConfig, ModelError, check_model_source

    d = tmp_path / "custom"
    d.mkdir()
    (d / "config.json").write_text(
        json.dumps(
            {
                "model_type": "mymodel",
                "auto_map": {"AutoConfig": "configuration_my.MyConfig", "AutoModelForCausalLM": "modeling_my.MyModel"},
            }
        )
    )
    with pytest.raises(ModelError) as ei:
        check_model_source(ModelConfig(base_model=str(d)))
    msg = str(ei.value)
    assert "--trust-remote-code" in msg and "not a local folder" not in msg and "offline" not in msg, msg
    (d / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(ModelError, match="cannot load model folder") as ei:
        check_model_source(ModelConfig(base_model=str(d)))
    assert "offline" not in str(ei.value)


@pytest.mark.parametrize("offline", [True, False])
def test_an_unreachable_hub_id_fails_in_seconds_without_blind_advice(monkeypatch, offline):
    from ttft.engine.models import ModelConfig, ModelError, check_hub_model

    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    t = time.perf_counter()
    with pytest.raises(ModelError) as ei:
        check_hub_model(ModelConfig(base_model="someone/some-model"))
    assert time.perf_counter() - t < 3
    msg = str(ei.value)
    assert msg.startswith("base_model: cannot load model 'someone/some-model'") and "HF_HUB_OFFLINE=0" not in msg
    assert ("HF_HUB_OFFLINE is set" in msg) if offline else ("cannot reach 127.0.0.1:9" in msg), msg
    with pytest.raises(ModelError, match="neither a local model folder nor a hub id"):
        check_hub_model(ModelConfig(base_model="not a/valid/id"))


def test_validating_a_train_config_imports_no_torch():
    code = (
        "import sys\n"
        "from ttft.engine.train_config import TrainConfig\n"
        "TrainConfig.from_json({'device': 'cpu', 'steps': 3}).validate()\n"
        "TrainConfig(device='auto').validate()\n"
        "try:\n"
        "    TrainConfig(device='gpu').validate()\n"
        "except Exception as e:\n"
        "    print(e)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["device: device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'", "[]"], r.stdout


# =========================================================================== the Host header (DNS rebinding)


def test_only_the_served_hosts_are_allowed():
    from ttft.ui import widgets as w

    allowed = w.allowed_hosts(server_address="0.0.0.0", extra="")
    for ok in ("localhost:8501", "127.0.0.1:8501", "[::1]:8501", "LOCALHOST", "0.0.0.0:8501", None, ""):
        assert w.host_allowed(ok, allowed), ok
    for bad in ("evil.example:8501", "127.0.0.2:8501", "localhost.evil.example", "[::2]:8501", "attacker.com"):
        assert not w.host_allowed(bad, allowed), bad
    mine = w.allowed_hosts(server_address="127.0.0.1", extra="gpu-box.lan, 10.0.0.5")
    assert w.host_allowed("gpu-box.lan:8501", mine) and w.host_allowed("10.0.0.5", mine)
    assert w.allowed_hosts(server_address="", extra="*") is None and w.host_allowed("anything", None)
