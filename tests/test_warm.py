"""The warm worker (ttft.runs.warm): a job forked from a process that has imported torch and transformers gives the
same files as a fresh process, can be stopped like one, and is used only when it would run exactly the same."""

from __future__ import annotations

import json
import os
import signal

import pytest
from test_jobs import runs, status_of, tiny_train, wait_for  # noqa: F401 - the runs fixture

from ttft.engine import commands
from ttft.runs import jobs, process, registry, warm

pytestmark = pytest.mark.slow

PREDICT = ["predict", "--dataset", "arc-agi-1/evaluation", "--tasks", "00576224", "--views", "2", "--threads", "1"]


def _lines(path) -> list[dict]:
    skip = ("seconds", "time", "_s")
    return [
        {k: v for k, v in json.loads(line).items() if not any(s in k for s in skip)}
        for line in path.read_text().splitlines()
    ]


def _supervisor(job) -> str:
    return (job.path / "supervisor.txt").read_text()


def test_forked_jobs_match_fresh_ones_and_stop_like_them(runs, tiny_model, monkeypatch):  # noqa: F811
    monkeypatch.setenv(warm.ENABLE_ENV, "1")
    assert warm.ensure(runs.root)
    got = wait_for(lambda: warm.info(runs.root), 120, "the warm worker")
    assert not warm.ensure(runs.root), "one worker per runs folder"
    try:
        # a prediction forked by the worker ...
        a = commands.launch_command([*PREDICT, "--base-model", tiny_model], runs, name="warm")
        wait_for(lambda: status_of(runs, a) == "finished", 120, "the forked prediction")
        assert "forked by the warm worker" in _supervisor(a)

        # ... is never used for another environment (what the imports read could differ): a fresh process then
        with open(os.devnull, "rb") as null:
            fds = [null.fileno()] * 3
            assert warm.spawn(runs.root, PREDICT, None, {**os.environ, "HF_HUB_OFFLINE": "0"}, fds) is None

        # a forked training job stops like a fresh one: SIGTERM → checkpoint → 'stopped'
        t = commands.launch_command(tiny_train(tiny_model, 5000, "--save-steps", "100000"), runs, name="train")
        wait_for(lambda: registry.get_job(t.path).step >= 2, 120, "the forked training to step")
        assert "forked by the warm worker" in _supervisor(t)
        s = jobs.stop(t.id, runs, wait=True)
        assert s.status == "stopped" and 0 < s.step < 5000 and s.run.last_checkpoint() is not None
    finally:
        os.kill(got["pid"], signal.SIGTERM)
    wait_for(lambda: not process.process_alive(got["pid"], got["pid_start"]), 30, "the worker to exit")
    assert warm.info(runs.root) is None

    # the same prediction in a fresh process (no worker now): the same predictions, view for view
    b = commands.launch_command([*PREDICT, "--base-model", tiny_model], runs, name="fresh")
    wait_for(lambda: status_of(runs, b) == "finished", 120, "the fresh prediction")
    assert "forked" not in _supervisor(b)
    pa, pb = (next(j.run_dir.rglob("predictions.jsonl")) for j in (registry.get_job(a.path), registry.get_job(b.path)))
    assert _lines(pa) == _lines(pb) and len(_lines(pa)) == 2


def test_no_worker_when_turned_off(runs, monkeypatch):  # noqa: F811
    monkeypatch.setenv(warm.ENABLE_ENV, "0")
    assert not warm.ensure(runs.root) and warm.info(runs.root) is None
