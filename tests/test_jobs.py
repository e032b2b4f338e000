"""Job system (ttft.jobs): registry state machine, queue and slot locks, stop / SIGKILL / resume of real tiny jobs,
the command a config gives, metrics reading and the loss chart, and the jobs CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ttft.engine import commands
from ttft.runs import jobs, process, registry, rundir
from ttft.runs import metrics as runmetrics
from ttft.runs.rundir import process_start_time, read_json, write_json_atomic
from ttft.views import charts

ROOT = Path(__file__).resolve().parents[1]
SMALL_TASKS = "00576224,0c786b71"  # arc-agi-1/evaluation, small grids


@pytest.fixture
def runs(tmp_path, monkeypatch) -> registry.JobConfig:
    monkeypatch.setenv("TTFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    cfg = registry.JobConfig(runs_dir=str(tmp_path / "runs"), poll_s=0.1, stop_timeout_s=60)
    cfg.root.mkdir(parents=True)
    yield cfg
    for j in registry.list_jobs(cfg.root):  # never leave a launched job behind (fake runs may carry our own pid)
        if j.active and j.meta.get("argv") and os.getpid() not in (j.pid, j.raw.get("supervisor_pid")):
            jobs.stop(j, cfg, wait=True, timeout=10)


def wait_for(pred, timeout: float = 120, what: str = "condition", every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


def status_of(cfg, job) -> str:
    return registry.get_job(job.path, cfg.root).status


def tiny_train(model: str, steps: int, *extra: str) -> list[str]:
    return [
        "train",
        "--base-model",
        model,
        "--dataset",
        "arc-agi-1/evaluation",
        "--tasks",
        SMALL_TASKS,
        "--steps",
        str(steps),
        "--lora-r",
        "2",
        "--threads",
        "1",
        "--val",
        "none",
        *extra,
    ]


def fake_run(root: Path, name: str, status: dict | None, config: dict | None = None, meta: dict | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    write_json_atomic(d / "config.json", config or {"mode": "ttft", "dataset": "arc-agi-1/evaluation"})
    if status is not None:
        write_json_atomic(d / "status.json", status)
    if meta is not None:
        write_json_atomic(d / rundir.JOB_FILE, meta)
    return d


@pytest.fixture
def sleeper():
    p = subprocess.Popen(["sleep", "60"])
    yield p
    if p.poll() is None:
        p.kill()
    p.wait()


# =========================================================================== processes and the registry


def test_process_alive_checks_the_start_time_and_zombies(sleeper):
    start = process_start_time(sleeper.pid)
    assert process.process_alive(sleeper.pid, start)
    assert not process.process_alive(sleeper.pid, start + 7.0), "same pid, other start time: a reused pid"
    os.kill(sleeper.pid, signal.SIGKILL)
    wait_for(lambda: process.process_state(sleeper.pid) == "Z", 10, "a zombie")
    assert not process.process_alive(sleeper.pid, start, reap=False), "a zombie has ended"
    assert not process.process_alive(sleeper.pid, start)  # and is reaped by the check
    assert process.process_state(sleeper.pid) is None


def test_registry_derives_statuses_from_run_directories(runs, sleeper):
    root, me, my_start = runs.root, os.getpid(), process_start_time(os.getpid())
    fake_run(root, "a-running", {"status": "running", "pid": me, "pid_start": my_start, "step": 3, "max_steps": 9})
    fake_run(
        root,
        "b-reused-pid",
        {"status": "running", "pid": sleeper.pid, "pid_start": process_start_time(sleeper.pid) - 50},
    )
    fake_run(root, "c-gone", {"status": "running", "pid": 2**22 + 17, "pid_start": 1.0, "exit_signal": "SIGKILL"})
    fake_run(root, "d-finished", {"status": "finished", "pid": 2**22 + 17, "pid_start": 1.0})
    fake_run(root, "e-failed", {"status": "failed", "error": "ValueError: boom", "traceback": "Traceback ..."})
    fake_run(
        root,
        "f-queued-dead-waiter",
        {"status": "queued", "queued_at": time.time() - 5, "supervisor_pid": 2**22 + 17, "supervisor_start": 1.0},
        meta={"kind": "cpu", "argv": ["--version"]},
    )
    fake_run(
        root,
        "g-queued",
        {
            "status": "queued",
            "queued_at": time.time(),
            "supervisor_pid": sleeper.pid,
            "supervisor_start": process_start_time(sleeper.pid),
            "kind": "cpu",
        },
        meta={"kind": "cpu", "argv": ["x"]},
    )
    fake_run(root, "h-stopping", {"status": "stopping", "pid": me, "pid_start": my_start})
    (root / ".locks").mkdir()
    (root / "not-a-run").mkdir()
    got = {j.id: j for j in registry.list_jobs(root)}
    assert set(got) == {
        "a-running",
        "b-reused-pid",
        "c-gone",
        "d-finished",
        "e-failed",
        "f-queued-dead-waiter",
        "g-queued",
        "h-stopping",
    }
    assert {k: j.status for k, j in got.items()} == {
        "a-running": "running",
        "b-reused-pid": "lost",
        "c-gone": "lost",
        "d-finished": "finished",
        "e-failed": "failed",
        "f-queued-dead-waiter": "lost",
        "g-queued": "queued",
        "h-stopping": "stopping",
    }
    assert "SIGKILL" in got["c-gone"].note
    assert got["g-queued"].position == 1 and got["f-queued-dead-waiter"].position is None
    assert got["a-running"].step == 3 and got["a-running"].max_steps == 9
    # a new registry read (as after an app restart) derives the same from the folders alone
    assert [j.status for j in registry.list_jobs(root)] == [j.status for j in registry.list_jobs(root)]


def test_a_zombie_job_process_counts_as_ended(runs):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start_time(child.pid)
    fake_run(runs.root, "z", {"status": "running", "pid": child.pid, "pid_start": start})
    wait_for(lambda: process.process_state(child.pid) in ("Z", None), 20, "the child to end")
    assert registry.get_job("z", runs.root).status == "lost"
    assert process.process_state(child.pid) is None, "the registry reaped its own finished child"


# =========================================================================== queue and slot locks


def test_queue_positions_stop_while_queued_and_release(runs):
    held = process.try_acquire_slot(runs.root, "cpu", 1, holder="test")
    assert held is not None
    first = commands.launch_command(["--", "--version"], runs, name="first")
    second = commands.launch_command(["--version"], runs, name="second")
    assert first.status == second.status == "queued"
    assert (first.position, second.position) == (1, 2)
    assert process.try_acquire_slot(runs.root, "cpu", 1) is None, "the slot is busy"
    stopped = jobs.stop(first, runs)
    assert stopped.status == "stopped" and "queued" in stopped.raw["note"]
    assert registry.get_job(second.path, runs.root).position == 1
    os.close(held[0])  # free the slot: the second job starts and ends
    wait_for(lambda: status_of(runs, second) == "finished", 60, "the second job to run")
    assert (second.path / rundir.STDOUT_FILE).read_text().startswith("ttft ")
    assert status_of(runs, first) == "stopped", "a stopped queued job never starts"
    assert not process.process_alive(first.raw.get("supervisor_pid"), first.raw.get("supervisor_start"))


def test_a_stale_slot_lock_does_not_block_the_queue(runs):
    lock = runs.root / ".locks" / "cpu-0.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(120)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    assert process.try_acquire_slot(runs.root, "cpu", 1) is None
    holder.kill()  # dies holding the lock: the kernel releases it
    holder.wait()
    job = commands.launch_command(["--version"], runs)
    wait_for(lambda: status_of(runs, job) == "finished", 60, "the job after a stale lock")


def test_cpu_concurrency_setting_runs_jobs_side_by_side(runs):
    two = registry.JobConfig(runs_dir=runs.runs_dir, cpu_slots=2, poll_s=0.1)
    held = process.try_acquire_slot(runs.root, "cpu", 1, holder="test")  # slot 0 busy, slot 1 free
    job = commands.launch_command(["--version"], two)
    wait_for(lambda: status_of(runs, job) == "finished", 60, "a job in the second CPU slot")
    assert registry.get_job(job.path).raw["slot"] == "cpu-1"
    os.close(held[0])


def test_a_failing_command_ends_failed_with_its_stderr(runs):
    job = commands.launch_command(["tasks", str(runs.root / "no-such-dataset")], runs)
    wait_for(lambda: status_of(runs, job) == "failed", 60, "the job to fail")
    j = registry.get_job(job.path, runs.root)
    assert "no-such-dataset" in j.raw["error"] and j.raw["exit_code"] == 2
    assert "no-such-dataset" in j.raw["traceback"]
    with pytest.raises(registry.JobError, match="only a stopped, failed or lost"):
        jobs.resume(fake_run(runs.root, "fin", {"status": "finished"}), runs)


def test_delete_refuses_a_running_job_and_removes_others(runs):
    me = os.getpid()
    running = fake_run(runs.root, "r", {"status": "running", "pid": me, "pid_start": process_start_time(me)})
    with pytest.raises(registry.JobError, match="stop it before deleting"):
        jobs.delete("r", runs)
    assert running.exists()
    done = fake_run(runs.root, "d", {"status": "finished"})
    assert jobs.delete("d", runs) == done and not done.exists()
    (runs.root / "plain").mkdir()
    with pytest.raises(registry.JobError, match="no run"):
        jobs.delete("plain", runs)


def test_launch_rejects_bad_commands_before_queueing(runs, tiny_model):
    with pytest.raises(registry.JobError, match="lr"):
        commands.launch_command(tiny_train(tiny_model, 5, "--lr", "-1"), runs)
    with pytest.raises(registry.JobError, match="bad train command"):
        commands.launch_command(["train", "--no-such-flag"], runs)
    with pytest.raises(registry.JobError, match="nothing to launch"):
        commands.launch_command(["--"], runs)
    assert registry.list_jobs(runs.root) == []


# =========================================================================== real tiny jobs


@pytest.mark.slow
def test_real_jobs_queue_progress_restart_and_stop(runs, tiny_model):
    a = commands.launch_command(tiny_train(tiny_model, 5000, "--save-steps", "100000"), runs, name="a")
    b = commands.launch_command(tiny_train(tiny_model, 3), runs, name="b")
    assert a.kind == b.kind == "cpu" and a.status == b.status == "queued"
    wait_for(lambda: status_of(runs, a) == "running", 60, "a to start")
    b_now = registry.get_job(b.path, runs.root)
    assert b_now.status == "queued" and b_now.position == 1, "one CPU job at a time: b waits"
    # progress is observed in the run directory
    wait_for(lambda: registry.get_job(a.path).step >= 5, 120, "a's progress")
    m = runmetrics.read_metrics(a.path / "metrics.jsonl")
    assert m.n >= 5 and not np.isnan(m.col("loss")[:5]).any()
    # a new registry (as after an app restart: nothing in memory) finds the running job and its process
    process._CHILDREN.clear()
    again = {j.id: j for j in registry.list_jobs(runs.root)}
    assert again[a.id].status == "running" and process.process_alive(again[a.id].pid, again[a.id].raw["pid_start"])
    # stop: SIGTERM → checkpoint → 'stopped', and the process is gone
    pid, start = again[a.id].pid, again[a.id].raw["pid_start"]
    s = jobs.stop(a.id, runs, wait=True)
    assert s.status == "stopped" and not process.process_alive(pid, start)
    ck = s.run.last_checkpoint()
    assert ck is not None and int(ck.name.split("-")[1]) == s.step and 0 < s.step < 5000
    assert (ck / "optimizer.pt").exists()
    # the queued job starts once the first has ended, and finishes
    wait_for(lambda: status_of(runs, b) == "finished", 120, "b to run after a")
    b_done = registry.get_job(b.path)
    assert b_done.raw["started"] >= s.raw["ended"], "b's process began after a's ended"
    assert b_done.step == 3 and (b.path / "adapter" / "adapter_config.json").exists()


@pytest.mark.slow
def test_sigkill_shows_lost_and_resume_continues_from_the_checkpoint(runs, tiny_model):
    job = commands.launch_command(tiny_train(tiny_model, 5000, "--save-steps", "20"), runs)
    wait_for(lambda: registry.get_job(job.path).run.last_checkpoint() is not None, 120, "a checkpoint")
    j = registry.get_job(job.path)
    os.kill(j.pid, signal.SIGKILL)
    wait_for(lambda: status_of(runs, job) != "running", 10, "the kill to be seen")
    lost = registry.get_job(job.path, runs.root)
    assert lost.status == "lost", lost
    assert "SIGKILL" in lost.note and "without a final status" in lost.note
    ck_step = int(lost.run.last_checkpoint().name.split("-")[1])
    resumed = jobs.resume(job.id, runs)
    assert resumed.status in ("queued", "running") and resumed.meta["argv"] == ["train", "--resume", str(job.path)]

    def stepping() -> bool:
        j = registry.get_job(job.path)
        if j.status in ("failed", "lost", "finished", "stopped"):
            pytest.fail(f"the resumed job ended {j.status}: {j.raw.get('error')}")
        return j.status == "running" and any(m.get("step", 0) > ck_step for m in j.run.metrics()[-3:])

    wait_for(stepping, 120, "the resumed job to step")
    jobs.stop(job.id, runs, wait=True)
    steps = [m["step"] for m in resumed.run.metrics() if "loss" in m]
    assert ck_step + 1 in steps, "the resumed run continued right after its checkpoint"
    assert registry.get_job(job.path).status == "stopped"


def test_a_checkpoint_killed_mid_save_is_not_resumed_from(tmp_path):
    from ttft.runs.rundir import RunDir

    run = RunDir(tmp_path)
    for step, files in (
        (20, ("adapter_model.safetensors", "optimizer.pt", "trainer_state.json")),
        (40, ("README.md", "adapter_model.safetensors")),
    ):  # 40: SIGKILL while saving
        d = tmp_path / "checkpoints" / f"checkpoint-{step}"
        d.mkdir(parents=True)
        for f in files:
            (d / f).write_text("x")
    assert run.last_checkpoint().name == "checkpoint-20"


# =========================================================================== the command of a config


def test_train_argv_gives_back_exactly_the_config(tiny_model):
    from ttft.core.augment import AugmentOptions
    from ttft.core.encoding import EncodingConfig
    from ttft.engine.models import ModelConfig
    from ttft.engine.train_config import TrainConfig

    base = TrainConfig()
    assert commands.train_argv(base)[:5] == ["train", "--mode", "ttft", "--dataset", "arc-agi-1/evaluation"]
    custom = TrainConfig(
        mode="ttft",
        tasks=("00576224", "0c786b71"),
        max_task_tokens=900,
        per_task=True,
        leave_out=2,
        keep_original_colors=0.25,
        steps=17,
        lr=3e-5,
        batch_size=2,
        grad_accum=3,
        scheduler="linear",
        warmup_steps=2,
        weight_decay=0.01,
        too_long="drop",
        seed=5,
        device="cpu",
        val="none",
        eval_steps=4,
        logging_steps=2,
        save_steps=7,
        threads=1,
        model=ModelConfig(base_model=tiny_model, lora_r=4, lora_alpha=8, lora_dropout=0.1, target_modules="q_proj"),
        encoding=EncodingConfig(max_seq_len=1024, format="shape+rows", loss_on="outputs"),
        augment=AugmentOptions(
            transforms=("identity", "rot90"),
            colors="all",
            p_bg=0.1,
            shuffle=False,
            compose=("pad", "upscale:2x2:input"),
        ),
    )
    for cfg in (base, custom):
        argv = commands.train_argv(cfg)
        assert commands.parse_train_argv(argv)[0].to_json() == cfg.to_json()
    # an option without a flag: the command goes through a config file instead
    from dataclasses import dataclass

    from ttft.options import option

    @dataclass
    class WithFlagless(TrainConfig):
        secret: int = option(0, "an option set only through a config file", flag=False)

    assert commands.train_argv(WithFlagless(secret=5)) is None and commands.train_argv(WithFlagless()) is not None
    assert jobs.command_line(["train", "--tasks", "a b"]) == "python -m ttft train --tasks 'a b'"


# =========================================================================== metrics and charts


def _line(step: int, **kw) -> str:
    return json.dumps({"step": step, "time": 1000.0 + step, **kw}) + "\n"


def test_metrics_reader_is_incremental_and_ignores_a_half_line(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text("".join(_line(i, loss=1.0 / i, lr=1e-3) for i in range(1, 4)))
    r = runmetrics.MetricsReader(f)
    m = r.read()
    assert m.n == 3 and list(m.col("step")) == [1, 2, 3]
    with open(f, "a") as fh:
        fh.write(_line(4, loss=0.2, tokens_per_second=None) + '{"step": 5, "lo')
    m = r.read()
    assert m.n == 4 and np.isnan(m.col("tokens_per_second")).all() and np.isnan(m.col("eval_loss")).all()
    with open(f, "a") as fh:
        fh.write('ss": 0.1, "eval_loss": 0.3, "task": "t1"}\n')
    m = r.read()
    assert m.n == 5 and m.col("eval_loss")[-1] == 0.3 and m.tasks == [None, None, None, None, "t1"]
    assert r.offset == f.stat().st_size
    naive = [json.loads(x) for x in f.read_text().splitlines()]
    assert list(m.col("loss")) == [d["loss"] for d in naive]
    f.write_text(_line(1, loss=9.0))  # replaced (a new run in the same folder): read again from the start
    assert list(r.read().col("loss")) == [9.0]
    assert runmetrics.MetricsReader(tmp_path / "missing.jsonl").read().n == 0


def test_loss_chart_shows_every_step_eval_loss_and_lr():
    rows = [{"step": i, "loss": 2.0 / i, "lr": 1e-4 * i} for i in range(1, 6)] + [{"step": 5, "eval_loss": 0.5}]
    cols = {k: np.array([r.get(k, np.nan) for r in rows], dtype=float) for k in ("step", "loss", "lr", "eval_loss")}
    m = runmetrics.Metrics(columns=cols, n=len(rows))
    fig = charts.loss_figure(m)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["train loss"].x) == [1, 2, 3, 4, 5], "a 5-step run shows 5 points"
    assert list(by_name["eval loss"].y) == [0.5]
    assert by_name["learning rate"].yaxis == "y2" and fig.layout.yaxis2.overlaying == "y"
    assert fig.layout.yaxis.type == "linear" and charts.loss_figure(m, log_y=True).layout.yaxis.type == "log"
    loss = np.linspace(3, 1, 10_000)
    loss[6789] = 7.0  # a spike, kept by the downsampling
    big = runmetrics.Metrics(columns={"step": np.arange(1, 10_001.0), "loss": loss}, n=10_000)
    fig = charts.loss_figure(big)
    by_name = {t.name: t for t in fig.data}
    raw = by_name["train loss"]
    assert raw.x[0] == 1 and raw.x[-1] == 10_000, "the whole run, not the last N points"
    assert len(raw.x) <= runmetrics.MAX_POINTS and max(raw.y) == 7.0, "a bounded figure that keeps the spike"
    assert len(by_name["smoothed"].x) == len(raw.x)
    assert len(charts.loss_figure(big, max_points=10_000).data[0].x) == 10_000
    assert charts.loss_figure(runmetrics.Metrics()).layout.annotations[0].text == "no step logged yet"


def test_progress_gives_eta_and_tokens_per_second():
    t = np.arange(11, dtype=float) * 2.0  # 2 s per step
    m = runmetrics.Metrics(
        columns={"step": np.arange(11.0), "time": t, "loss": np.ones(11), "tokens_per_second": np.full(11, 500.0)}, n=11
    )
    job = registry.Job(path=Path("/x"), status="running", raw={"step": 10, "max_steps": 110, "started": 0.0})
    p = registry.progress(job, m, now=t[-1])
    assert p.step == 10 and p.fraction == pytest.approx(10 / 110)
    assert p.eta_s == pytest.approx(200.0) and p.tokens_per_second == 500.0
    done = registry.progress(registry.Job(path=Path("/x"), status="finished", raw={"step": 10, "max_steps": 10}), m)
    assert done.eta_s is None and done.fraction == 1.0
    assert runmetrics.format_seconds(3725) == "1:02:05" and runmetrics.format_seconds(None) == "–"


# =========================================================================== CLI


def _cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "ttft", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_jobs_cli_list_launch_stop_delete(runs):
    env = {"TTFT_RUNS_DIR": str(runs.root)}
    fake_run(runs.root, "old", {"status": "finished", "step": 4, "max_steps": 4})
    r = _cli("jobs", "launch", "--json", "--name", "cli", "--", "--version", env=env)
    assert r.returncode == 0, r.stderr
    launched = json.loads(r.stdout.strip().splitlines()[-1])
    assert launched["status"] in ("queued", "running", "finished") and launched["id"].endswith("-cli")
    wait_for(lambda: registry.get_job(launched["path"]).status == "finished", 60, "the CLI-launched job")
    r = _cli("jobs", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    listed = {j["id"]: j for j in json.loads(r.stdout.strip().splitlines()[-1])}
    assert listed["old"]["status"] == "finished" and listed[launched["id"]]["status"] == "finished"
    assert "old" in _cli("jobs", "list", env=env).stdout
    r = _cli("jobs", "stop", "old", "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout.strip().splitlines()[-1])["status"] == "finished"
    r = _cli("jobs", "delete", "old", env=env)
    assert r.returncode == 2 and "--yes" in r.stderr and (runs.root / "old").exists()
    assert _cli("jobs", "delete", "old", "--yes", env=env).returncode == 0 and not (runs.root / "old").exists()
    r = _cli("jobs", "resume", "nope", env=env)
    assert r.returncode == 2 and "no run 'nope'" in r.stderr
    assert read_json(Path(launched["path"]) / rundir.JOB_FILE)["argv"] == ["--version"]
