"""Hardening (issue 13), the faults that need real processes: a disk that fills up during training (a 2 MB tmpfs),
resuming past a damaged checkpoint or with the checkpoints gone (real tiny training runs), and a browser request
under a foreign Host name (DNS rebinding), refused by the real app server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLI_ENV, ROOT, free_port, run_group, stop

from ttft.runs import jobs, registry
from ttft.runs.integrity import checkpoint_problem
from ttft.runs.metrics import SUPERSEDED_FILE
from ttft.runs.rundir import RunDir, read_jsonl


def wait_for(pred, timeout: float = 120, what: str = "condition", every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


def train_args(model: str, run_dir: Path, steps: int, *extra: str) -> list[str]:
    return [
        "train",
        "--base-model",
        model,
        "--dataset",
        "arc-agi-1/evaluation",
        "--tasks",
        "00576224",
        "--steps",
        str(steps),
        "--lora-r",
        "2",
        "--threads",
        "1",
        "--val",
        "none",
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
        *extra,
    ]


def train(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return run_group([sys.executable, "-m", "ttft", *args], timeout=timeout)


# =========================================================================== a damaged or missing checkpoint


@pytest.fixture(scope="module")
def finished_run(tiny_model, tmp_path_factory) -> Path:
    """A run of 8 steps with checkpoints at 4 and 8 (copied by each test, which then damages it)."""
    d = tmp_path_factory.mktemp("ckpt") / "run"
    r = train(*train_args(tiny_model, d, 8, "--save-steps", "4", "--save-total-limit", "3"))
    assert r.returncode == 0, r.stderr
    assert [p.name for p in RunDir(d).checkpoints()] == ["checkpoint-4", "checkpoint-8"]
    return d


def loss_steps(run: RunDir) -> list[int]:
    return [m["step"] for m in run.metrics() if "loss" in m]


@pytest.mark.parametrize(
    "damage, why",
    [
        ("adapter_model.safetensors", "adapter_model.safetensors is truncated"),
        ("trainer_state.json", "trainer_state.json is not valid JSON"),
        ("optimizer.pt", "optimizer.pt is truncated or damaged"),
    ],
)
def test_resume_skips_a_truncated_checkpoint_for_the_previous_intact_one(finished_run, tmp_path, damage, why):
    d = tmp_path / "run"
    shutil.copytree(finished_run, d)
    f = d / "checkpoints" / "checkpoint-8" / damage
    with open(f, "r+b") as fh:
        fh.truncate(f.stat().st_size // 3)
    run = RunDir(d)
    assert why in checkpoint_problem(d / "checkpoints" / "checkpoint-8")
    assert checkpoint_problem(d / "checkpoints" / "checkpoint-4") is None
    r = train("train", "--resume", str(d), "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["steps"] == 8
    assert f"skipped checkpoint-8: {why}" in r.stderr and "resuming from checkpoint-4" in r.stderr
    res = run.status()["resume"]
    assert res["from"] == "checkpoint-4" and res["skipped"][0].startswith(f"checkpoint-8: {why}")
    assert "skipped checkpoint-8" in run.log_file.read_text()
    # the steps after checkpoint-4 were logged again, and only once: the file and the chart agree
    assert loss_steps(run) == list(range(1, 9))
    assert [json.loads(x)["step"] for x in (d / SUPERSEDED_FILE).read_text().splitlines()] == [5, 6, 7, 8]
    assert checkpoint_problem(d / "checkpoints" / "checkpoint-8") is None, "saved again when the run passed step 8"


def test_resume_with_the_checkpoints_gone_says_it_starts_again(finished_run, tmp_path):
    d = tmp_path / "run"
    shutil.copytree(finished_run, d)
    shutil.rmtree(d / "checkpoints")
    r = train("train", "--resume", str(d), "--threads", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert "no intact checkpoint is left: training the run again from its first step" in r.stderr
    assert "8 metrics line(s) after step 0 moved" in r.stderr
    run = RunDir(d)
    assert run.status()["resume"]["from"] is None and loss_steps(run) == list(range(1, 9))


# =========================================================================== a disk that fills up


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (mounting needs root: skipped, saying so, where it cannot be mounted; the ENOSPC paths are also
    checked with a faked write error in tests/test_hardening.py)."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({e}); the faked-ENOSPC tests cover the code paths")
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs to fill up (needs root: {r.stderr.strip()}); the faked-ENOSPC "
            "tests in test_hardening.py cover the code paths"
        )
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


def fill(disk: Path, leave: int) -> Path:
    """Fill the file system up to ``leave`` bytes free."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    with open(filler, "r+b") as f:
        f.truncate(max(0, filler.stat().st_size - leave))
    return filler


def test_a_full_disk_during_a_checkpoint_ends_failed_with_that_reason(tiny_model, tmp_path, small_disk, monkeypatch):
    from ttft.engine import commands

    root = tmp_path / "runs"
    root.mkdir()
    for k, v in CLI_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("TTFT_RUNS_DIR", str(root))
    cfg = registry.JobConfig(runs_dir=str(root), poll_s=0.1, stop_timeout_s=10)
    run_dir = small_disk / "run"
    job = commands.launch_command(train_args(tiny_model, run_dir, 100_000, "--save-steps", "25"), cfg)
    try:
        wait_for(lambda: any("loss" in m for m in read_jsonl(run_dir / "metrics.jsonl")), 120, "the first step")
        fill(small_disk, leave=48 * 1024)  # steps still log; the next checkpoint (~110 KB) cannot be written
        j = wait_for(
            lambda: (j := registry.get_job(job.path, root)).status not in ("queued", "running") and j,
            180,
            "the run to end",
        )
    finally:
        if registry.get_job(job.path, root).active:
            jobs.stop(job, cfg, wait=True)
    assert j.status == "failed", (j.status, j.note, j.raw)
    assert j.raw["error"].startswith("disk full: "), j.raw["error"]
    assert "lost" not in j.note and "out of memory" not in (j.note + j.raw["error"])
    # queueing it again on the full disk (the failed run gave back the space it kept: fill it up again): one line,
    # no traceback, nothing queued
    (small_disk / "filler").unlink()
    fill(small_disk, leave=0)
    r = subprocess.run(
        [sys.executable, "-m", "ttft", "jobs", "resume", str(job.path)],
        capture_output=True,
        text=True,
        env={**os.environ, "TTFT_RUNS_DIR": str(root)},
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: cannot queue run: No space left on device"), line
    assert registry.get_job(job.path, root).status == "failed"


# =========================================================================== DNS rebinding: a foreign Host is refused


@pytest.mark.browser
def test_a_request_for_a_foreign_host_is_refused_before_any_widget(chromium):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "0.0.0.0",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env={**os.environ, "TTFT_ALLOWED_HOSTS": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        import urllib.request

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(healthy, 60, "the app server")
        ctx = chromium.new_context()
        try:
            page = ctx.new_page()
            # 127.0.0.2 is this machine too (loopback), under a name the app does not serve: what a page on a
            # rebinding domain looks like to the server
            page.goto(f"http://127.0.0.2:{port}/Fine-tune", timeout=60_000)
            page.get_by_text("Refused: this app answers to localhost").wait_for(timeout=60_000)
            assert page.locator("[data-testid='stButton']").count() == 0
            assert page.locator("[data-testid='stTextInput']").count() == 0
            assert "'127.0.0.2'" in page.content()
            page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
            page.get_by_text("ttft — ARC test-time fine-tuning workbench").wait_for(timeout=60_000)
            assert "Refused" not in page.content()
        finally:
            ctx.close()
    finally:
        stop(proc)
