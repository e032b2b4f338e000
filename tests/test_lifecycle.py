"""The one run lifecycle (ttft.runs.lifecycle) and experiments as jobs: transitions, SIGTERM, pid + start time, job
links; a killed experiment shows lost, a stopped one stops its stage, its stages wait in the same queue and slots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import CLI_ENV, ROOT

from ttft.runs import jobs, process, registry
from ttft.runs.lifecycle import EXIT_CODES, RunLifecycle
from ttft.runs.rundir import JOB_FILE, RunDir, process_start_time, write_json_atomic

TASK = "00576224"  # arc-agi-1/evaluation, small grids


def wait_for(pred, timeout: float = 60, what: str = "condition", every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def runs(tmp_path, monkeypatch) -> registry.JobConfig:
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("TTFT_RUNS_DIR", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = registry.JobConfig(runs_dir=str(root), poll_s=0.1, stop_timeout_s=20)
    yield cfg
    for j in registry.list_jobs(root):  # never leave a job behind (fake jobs may carry our own pid)
        if j.active and j.meta.get("argv") and os.getpid() not in (j.pid, j.raw.get("supervisor_pid")):
            jobs.stop(j, cfg, wait=True, timeout=5)


def jobs_by_id(cfg) -> dict[str, registry.Job]:
    return {j.id: j for j in registry.list_jobs(cfg.root)}


def experiment_argv(model: str, out: Path, *extra: str) -> list[str]:
    return [
        "experiment",
        "seed-ablation",
        "--base-model",
        model,
        "--tasks",
        TASK,
        "--rows",
        "baseline",
        "--views",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
        *extra,
    ]


# =========================================================================== the lifecycle


def test_running_then_finished_records_pid_and_start_time(tmp_path):
    run = RunDir(tmp_path / "r")
    write_json_atomic(run.status_file, {"status": "failed", "error": "old", "exit_signal": "SIGKILL", "note": "x"})
    with RunLifecycle(run).start(step=0, max_steps=3) as life:
        st = run.status()
        assert st["status"] == "running" and st["pid"] == os.getpid()
        assert st["pid_start"] == process_start_time(os.getpid()) and st["started"] <= time.time()
        assert not {"error", "exit_signal", "note", "ended"} & set(st), "a new start clears the last life's end"
        assert process.process_alive(st["pid"], st["pid_start"])
        life.update(step=3)
        assert life.exit_code is None
    st = run.status()
    assert st["status"] == "finished" and st["step"] == 3 and st["ended"] >= st["started"]
    assert life.exit_code == EXIT_CODES["finished"] == 0


def test_an_exception_ends_failed_with_the_error_and_traceback(tmp_path):
    run = RunDir(tmp_path / "r")
    life = RunLifecycle(run)
    with pytest.raises(ValueError, match="boom"):
        with life.start():
            raise ValueError("boom")
    st = run.status()
    assert st["status"] == "failed" and st["error"] == "ValueError: boom"
    assert "Traceback" in st["traceback"] and "boom" in st["traceback"] and len(st["traceback"]) <= 4000
    assert "ValueError: boom" in run.log_file.read_text()
    assert life.exit_code == 1


def test_sigterm_sets_the_stop_flag_and_ends_stopped(tmp_path):
    run = RunDir(tmp_path / "r")
    before = signal.getsignal(signal.SIGTERM)
    with RunLifecycle(run, stop_message="saving and stopping").start() as life:
        assert not life.requested
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: life.requested, 5, "the signal")
        assert run.status()["status"] == "stopping" and life.signal_name == "SIGTERM"
    assert run.status()["status"] == "stopped" and life.exit_code == 0
    assert "SIGTERM received: saving and stopping" in run.log_file.read_text()
    assert signal.getsignal(signal.SIGTERM) is before, "the handlers are restored"
    # an explicit status wins (a run that completed although a stop came in at its very end)
    with RunLifecycle(tmp_path / "s").start() as life:
        life.request_stop()
        assert life.finish("finished") == "finished"
    assert RunDir(tmp_path / "s").status()["status"] == "finished"


_LOOP = textwrap.dedent("""
    import sys, time
    from ttft.runs.lifecycle import RunLifecycle
    with RunLifecycle(sys.argv[1]).start() as life:
        print("started", flush=True)
        while not life.requested:
            time.sleep(0.02)
""")


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, "stopped"), (signal.SIGKILL, "lost")])
def test_a_process_ends_stopped_on_sigterm_and_lost_when_killed(runs, sig, status):
    d = runs.root / f"loop-{sig.name}"
    p = subprocess.Popen([sys.executable, "-c", _LOOP, str(d)], stdout=subprocess.PIPE, text=True, env=CLI_ENV)
    assert p.stdout.readline().strip() == "started"
    st = RunDir(d).status()
    assert st["pid"] == p.pid and st["pid_start"] == process_start_time(p.pid)
    assert jobs_by_id(runs)[d.name].status == "running"
    p.send_signal(sig)
    wait_for(lambda: jobs_by_id(runs)[d.name].status == status, 5, f"{status} after {sig.name}")
    rc = p.wait(5)  # (a SIGKILLed child may have been reaped by the registry's liveness check already)
    assert sig == signal.SIGKILL or rc == 0


def test_a_run_started_by_a_job_supervisor_elsewhere_is_linked_to_the_job(runs, monkeypatch):
    job_dir, exp = runs.root / "wrapper", runs.root / registry.EXPERIMENTS_DIR / "exp"
    write_json_atomic(
        job_dir / "status.json",
        {"status": "running", "pid": os.getpid(), "pid_start": process_start_time(os.getpid()), "started": 1.0},
    )
    write_json_atomic(job_dir / JOB_FILE, {"argv": ["experiment", "seed-ablation"], "kind": "experiment"})
    write_json_atomic(exp / "config.json", {"experiment": "seed-ablation"})
    monkeypatch.setenv(process.JOB_DIR_ENV, str(job_dir))
    with RunLifecycle(exp).start(step=1, max_steps=4) as life:
        assert RunDir(exp).status()["job"] == str(job_dir)
        assert RunDir(job_dir).status()["run_dir"] == str(exp)
        listed = jobs_by_id(runs)
        assert "exp" not in listed, "the linked run is listed through its job"
        assert listed["wrapper"].run.path == exp and listed["wrapper"].max_steps == 4
        assert listed["wrapper"].kind == "experiment"
        life.request_stop()
    # the supervisor records the run's final status in the job when the process ends
    jobs.finalize(job_dir, 0)
    st = RunDir(job_dir).status()
    assert st["status"] == "stopped" and st["exit_code"] == 0 and st["ended"] == RunDir(exp).status()["ended"]
    # a process that merely inherited the variable (a stage, a torchrun worker) does not link
    other = runs.root / "other"
    write_json_atomic(job_dir / "status.json", {"status": "running", "pid": 2**22 + 17, "pid_start": 1.0})
    with RunLifecycle(other).start():
        pass
    assert "job" not in RunDir(other).status() and "run_dir" not in RunDir(job_dir).status()
    assert registry.get_job("exp", runs.root).path == exp.absolute(), "experiments are found by id"


def test_experiment_commands_take_the_experiment_slot():
    assert jobs.job_kind(["experiment", "seed-ablation"], "gpu") == registry.ORCHESTRATOR
    assert jobs.job_kind(["train", "--steps", "3"], "gpu") == "gpu"
    from ttft.engine.experiment import stage_kind
    from ttft.engine.experiment_config import AblationConfig

    assert stage_kind(AblationConfig(device="cuda")) == "gpu" and stage_kind(AblationConfig(device="cpu")) == "cpu"


# =========================================================================== experiments as jobs


def test_a_killed_experiment_shows_lost_and_its_queued_stage_is_stopped(runs, tiny_model):
    held = process.try_acquire_slot(runs.root, "cpu", 1, holder="test")  # a CPU job is running: stages wait
    out = runs.root / registry.EXPERIMENTS_DIR / "killed"
    with open(runs.root.parent / "experiment-stderr.txt", "wb") as err:
        p = subprocess.Popen(
            [sys.executable, "-m", "ttft", *experiment_argv(tiny_model, out)],
            cwd=ROOT,
            env={**CLI_ENV, "TTFT_RUNS_DIR": str(runs.root)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        stage = wait_for(lambda: jobs_by_id(runs).get("killed--baseline--predict"), 60, "the stage job")
        assert stage.status == "queued" and stage.kind == "cpu" and stage.position == 1
        exp = jobs_by_id(runs)["killed"]
        assert exp.status == "running" and exp.kind == "experiment" and exp.pid == p.pid
        p.kill()
        t0 = time.monotonic()
        wait_for(lambda: jobs_by_id(runs)["killed"].status == "lost", 5, "the killed experiment to show lost")
        assert time.monotonic() - t0 < 5
        r = subprocess.run(
            [sys.executable, "-m", "ttft", "jobs", "list", "--json"],
            capture_output=True,
            text=True,
            env={**CLI_ENV, "TTFT_RUNS_DIR": str(runs.root)},
            cwd=ROOT,
            timeout=60,
        )
        listed = {j["id"]: j for j in json.loads(r.stdout.strip().splitlines()[-1])}
        assert listed["killed"]["status"] == "lost", r.stderr
        # its stage's supervisor sees the experiment gone and stops the stage instead of running it later
        wait_for(lambda: jobs_by_id(runs)["killed--baseline--predict"].status == "stopped", 20, "the orphan stage")
        assert "gone" in jobs_by_id(runs)["killed--baseline--predict"].raw["note"]
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        os.close(held[0])


def test_jobs_stop_of_a_launched_experiment_stops_its_stage(runs, tiny_model):
    held = process.try_acquire_slot(runs.root, "cpu", 1, holder="test")  # the CPU slot is busy the whole test
    out = runs.root / registry.EXPERIMENTS_DIR / "stopme"
    wrapper = runs.root / "20990101-000000-seed-ablation"
    wrapper.mkdir()
    try:
        job = jobs._enqueue(wrapper, experiment_argv(tiny_model, out), "cpu", runs, None)
        assert job.meta["kind"] == "experiment"
        # the orchestrator does not need the busy CPU slot: it runs, and queues its stage for that slot
        stage = wait_for(lambda: jobs_by_id(runs).get("stopme--baseline--predict"), 60, "the stage job")
        assert stage.status == "queued" and stage.kind == "cpu"
        listed = jobs_by_id(runs)
        assert listed[wrapper.name].status == "running" and listed[wrapper.name].raw["slot"] == "experiment-0"
        assert "stopme" not in listed, "the experiment folder is listed through its job"
        assert listed[wrapper.name].run.path == out
        stopped = jobs.stop(wrapper.name, runs, wait=True)
        assert stopped.status == "stopped", stopped.raw
        assert RunDir(out).status()["status"] == "stopped"
        assert jobs_by_id(runs)["stopme--baseline--predict"].status == "stopped"
        assert not (out / "results.json").exists()
    finally:
        os.close(held[0])


def test_a_gpu_stage_waits_while_another_gpu_job_runs(runs, tiny_model, tmp_path, monkeypatch):
    from ttft.engine import experiment
    from ttft.engine.experiment_config import AblationConfig

    monkeypatch.setattr(experiment, "stage_kind", lambda cfg: "gpu")  # as with --device cuda, without a GPU
    me = os.getpid()
    fake = runs.root / "gpu-job"
    write_json_atomic(
        fake / "status.json", {"status": "running", "pid": me, "pid_start": process_start_time(me), "kind": "gpu"}
    )
    write_json_atomic(fake / JOB_FILE, {"argv": ["train"], "kind": "gpu"})
    held = process.try_acquire_slot(runs.root, "gpu", 1, holder="gpu-job")
    out = tmp_path / "exp"
    cfg = AblationConfig(
        tasks=(TASK,), max_task_tokens=None, rows=("baseline",), base_model=tiny_model, views=1, device="cpu"
    )
    got: dict = {}

    def orchestrate():
        try:
            got["res"] = experiment.run_ablation(cfg, out, progress=lambda m: None, jobs_cfg=runs)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            got["error"] = e

    t = threading.Thread(target=orchestrate, daemon=True)
    t.start()
    try:
        stage = wait_for(lambda: jobs_by_id(runs).get("exp--baseline--predict"), 60, "the stage job")
        assert stage.kind == "gpu"
        for _ in range(10):  # it stays queued while the GPU slot is taken
            s = jobs_by_id(runs)["exp--baseline--predict"]
            assert s.status == "queued" and s.position == 1, s.raw
            time.sleep(0.1)
        assert RunDir(out).status()["status"] == "running"
        wait_for(lambda: RunDir(out).status().get("stage") == stage.id, 10, "the experiment to name its stage")
    finally:
        os.close(held[0])  # the GPU job ends: the stage runs
    t.join(300)
    assert not t.is_alive() and "error" not in got, got.get("error")
    res = got["res"]
    assert res["status"] == "finished" and res["rows"]["baseline"]["n_tasks"] == 1
    s = registry.get_job("exp--baseline--predict", runs.root)
    assert s.status == "finished" and s.raw["slot"] == "gpu-0"
    assert s.run.path == out / "rows" / "baseline" / "predictions"
    assert res["rows"]["baseline"]["predict_seconds"] > 0
    assert RunDir(out).status()["status"] == "finished"
