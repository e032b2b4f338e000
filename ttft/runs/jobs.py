"""Background jobs: launch ``python -m ttft …`` in its own process session, queue it, watch, stop, resume, delete.

There is no daemon. The run directory is the contract (see docs/jobs.md):

* ``launch`` writes ``<run>/job.json`` (the command, cpu/gpu kind, slot count) and ``status.json`` (``queued``), then
  starts a detached supervisor, ``python -m ttft jobs wait-and-run <run>`` (``start_new_session=True``), which
  waits for its turn (queue order = ``queued_at``, then the run id) and for a free device slot (an ``fcntl.flock``
  on ``<runs>/.locks/<kind>-<i>.lock``; the kernel releases it when the holder dies, so a stale lock never blocks),
  then runs the command as its child with stdout/stderr appended to ``stdout.txt`` / ``stderr.txt`` and the lock fd
  inherited (the slot is busy while the job's process lives). When the child ends without a final status the
  supervisor records one: ``finished`` (exit 0), ``failed`` (exit > 0, with the stderr tail) or, killed by a
  signal, the exit signal (the registry then shows ``lost``).
* The registry (:func:`list_jobs`) is derived from the run directories on every call, so a new app process finds
  running jobs, and a run started with plain ``python -m ttft train`` into the same folder shows the same way
  (``train()`` records its pid and process start time). A pid counts only when ``/proc`` shows the same start time
  (a reused pid is not the job) and the process is not a zombie; the supervisors this process started are reaped.
* :func:`stop`: a queued job is marked ``stopped``; a running one gets SIGTERM (it checkpoints and ends
  ``stopped``), and after ``stop_timeout_s`` SIGKILL (then ``stopped`` without a checkpoint at the stop).

Nothing here imports streamlit.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from ttft.runs.process import (
    _descendants,
    _job_env,
    _signal,
    _spawn_detached,
    device_kind,
    process_alive,
    run_lock,
    try_acquire_slot,
)
from ttft.runs.registry import KINDS, Job, JobConfig, JobError, _is_run_dir, derive_status, get_job
from ttft.runs.rundir import (
    ACTIVE,
    JOB_FILE,
    RESUMABLE,
    STDERR_FILE,
    STDOUT_FILE,
    SUPERVISOR_FILE,
    TERMINAL,
    RunDir,
    _tail,
    process_start_time,
    read_json,
    safe_name,
    write_json_atomic,
)

# --------------------------------------------------------------------------- config


# --------------------------------------------------------------------------- processes


# --------------------------------------------------------------------------- locks


# --------------------------------------------------------------------------- the registry


# --------------------------------------------------------------------------- launching


def _new_run_path(root: Path, label: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe_name(label.lstrip('-')) if label.strip('-') else 'job'}"
    for i in range(1000):
        p = root / (base if i == 0 else f"{base}-{i + 1}")
        try:
            p.mkdir()
            return p
        except FileExistsError:
            continue
    raise JobError(f"cannot create a run folder in {root}")


def launch(argv: Sequence[str], cfg: JobConfig | None = None, name: str | None = None,
           kind: str | None = None) -> Job:
    """Queue ``python -m ttft <argv>`` as a background job and start its supervisor; returns the queued job.

    ``train`` commands are validated first and get ``--run-dir`` (a new folder in the runs folder) unless they name
    one; ``train --resume RUN_DIR`` resumes that run. Other commands get a job folder for their status and output.
    """
    cfg = (cfg or JobConfig.from_env()).validate()
    argv = [str(a) for a in argv]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise JobError("nothing to launch: give a ttft command, e.g. train --config FILE")
    if kind is not None and kind not in KINDS:
        raise JobError(f"kind: must be cpu or gpu, got {kind!r}")
    config = None
    if argv[0] == "train":
        from ttft.engine.commands import parse_train_argv

        tcfg, run_dir, resume_dir = parse_train_argv(argv)
        kind = kind or device_kind(tcfg.device)
        config = tcfg.to_json()
        if resume_dir:
            job = get_job(resume_dir, cfg.root)
            if job.status not in RESUMABLE:
                raise JobError(f"{job.id} is {job.status}: only a stopped, failed or lost run can be resumed")
            return _enqueue(job.path, argv, kind, cfg, config)
        if run_dir:
            path = Path(run_dir).expanduser().absolute()
            if _is_run_dir(path):
                raise JobError(f"{path} already holds a run: resume it, or choose another --run-dir")
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = _new_run_path(cfg.root, name or tcfg.mode)
            argv = [*argv, "--run-dir", str(path)]
    else:
        kind = kind or "cpu"
        path = _new_run_path(cfg.root, name or argv[0])
    return _enqueue(path, argv, kind, cfg, config)


_CLEARED_ON_QUEUE = ("pid", "pid_start", "ended", "error", "traceback", "exit_code", "exit_signal", "stop_requested",
                     "note", "supervisor_pid", "supervisor_start", "slot")


def _enqueue(path: Path, argv: list[str], kind: str, cfg: JobConfig, config: dict | None) -> Job:
    path = Path(path).absolute()
    now = time.time()
    old = read_json(path / JOB_FILE, {}) or {}
    meta = {"argv": argv, "kind": kind, "slots": cfg.slots(kind), "stop_timeout_s": cfg.stop_timeout_s,
            "poll_s": cfg.poll_s, "cwd": os.getcwd(), "python": sys.executable,
            "created": old.get("created", now), "queued_at": now, "launches": int(old.get("launches", 0)) + 1,
            "config": config if config is not None else old.get("config")}
    write_json_atomic(path / JOB_FILE, meta)
    with run_lock(path):
        st = {k: v for k, v in RunDir(path).status().items() if k not in _CLEARED_ON_QUEUE}
        st.update(status="queued", queued_at=now, kind=kind, updated=now)
        write_json_atomic(path / "status.json", st)
    sup = _spawn_detached([sys.executable, "-m", "ttft", "jobs", "wait-and-run", str(path)], path / SUPERVISOR_FILE,
                          cwd=meta["cwd"])
    with run_lock(path):
        run = RunDir(path)
        if run.status().get("status") == "queued" and "supervisor_pid" not in run.status():
            run.update_status(supervisor_pid=sup.pid, supervisor_start=process_start_time(sup.pid))
    return get_job(path)


# --------------------------------------------------------------------------- the supervisor


def _queue_head(path: Path, kind: str) -> bool:
    """Whether this run is first among the queued runs of its kind in its runs folder."""
    root = path.parent
    queued = []
    for p in root.iterdir():
        if not _is_run_dir(p):
            continue
        raw = read_json(p / "status.json", {}) or {}
        if raw.get("status") != "queued" or raw.get("kind", (read_json(p / JOB_FILE, {}) or {}).get("kind")) != kind:
            continue
        if p != path and derive_status(raw, {})[0] != "queued":
            continue  # a dead waiter does not hold the queue
        queued.append((float(raw.get("queued_at") or 0), p.name, p))
    return bool(queued) and min(queued)[2] == path


def wait_and_run(run_dir: str | os.PathLike) -> int:
    """The supervisor of one job (``python -m ttft jobs wait-and-run RUN``): wait for the turn and a slot, run the
    command as a child holding the slot lock, record a final status if the child did not."""
    path = Path(run_dir).absolute()
    run = RunDir(path)
    meta = read_json(path / JOB_FILE)
    if not meta:
        print(f"{path}: no {JOB_FILE}", file=sys.stderr)
        return 2
    kind, slots, poll = meta["kind"], int(meta.get("slots", 1)), float(meta.get("poll_s", 0.25))
    me = {"supervisor_pid": os.getpid(), "supervisor_start": process_start_time(os.getpid())}
    with run_lock(path):
        st = run.status()
        if st.get("status") != "queued":
            return 0
        if st.get("supervisor_pid") not in (None, os.getpid()) and process_alive(st.get("supervisor_pid"),
                                                                                  st.get("supervisor_start")):
            print(f"{path}: another supervisor ({st['supervisor_pid']}) owns this job", file=sys.stderr)
            return 0
        run.update_status(**me)
    flag = {"stop": False}
    child: list[subprocess.Popen] = []

    def on_signal(signum, frame):
        if child:
            _signal(child[0].pid, signal.SIGTERM)  # the job checkpoints and stops
        else:
            flag["stop"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    got = None
    while got is None:
        if flag["stop"]:
            with run_lock(path):
                if run.status().get("status") == "queued":
                    run.update_status(status="stopped", ended=time.time(), note="stopped while queued")
            return 0
        st = run.status()
        if st.get("status") != "queued" or st.get("supervisor_pid") != os.getpid():
            return 0  # stopped, deleted or taken over while waiting
        if _queue_head(path, kind):
            got = try_acquire_slot(path.parent, kind, slots, holder=path.name)
        if got is None:
            time.sleep(poll)
    fd, slot = got
    with run_lock(path):
        st = run.status()
        if st.get("status") != "queued" or flag["stop"]:
            if st.get("status") == "queued":
                run.update_status(status="stopped", ended=time.time(), note="stopped while queued")
            return 0
        with open(path / STDOUT_FILE, "ab") as out, open(path / STDERR_FILE, "ab") as err:
            p = subprocess.Popen([sys.executable, "-m", "ttft", *meta["argv"]], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err, cwd=meta.get("cwd"), env=_job_env(), pass_fds=(fd,))
        child.append(p)
        run.update_status(status="running", pid=p.pid, pid_start=process_start_time(p.pid), slot=f"{kind}-{slot}",
                          started=time.time())
    print(f"{time.strftime('%H:%M:%S')} started pid {p.pid} in slot {kind}-{slot}: {shlex.join(meta['argv'])}",
          flush=True)
    rc = p.wait()
    os.close(fd)
    finalize(path, rc)
    print(f"{time.strftime('%H:%M:%S')} pid {p.pid} exited with {rc}; status {run.status().get('status')}",
          flush=True)
    return 0


def finalize(path: Path, rc: int) -> None:
    """Record how the job's process ended when it did not write a final status itself."""
    run = RunDir(Path(path))
    with run_lock(run.path):
        st = run.status()
        now = time.time()
        if st.get("status") in TERMINAL:
            run.update_status(exit_code=rc)
        elif rc == 0:
            run.update_status(status="finished", exit_code=0, ended=now)
        elif rc > 0:
            tail = _tail(run.path / STDERR_FILE)
            last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), f"exit status {rc}")
            run.update_status(status="failed", exit_code=rc, ended=now, error=st.get("error") or last.strip(),
                              traceback=st.get("traceback") or tail)
        else:
            name = _signame(-rc)
            if st.get("stop_requested"):
                run.update_status(status="stopped", exit_code=rc, exit_signal=name, ended=now,
                                  note=f"ended by {name} before it saved a checkpoint")
            else:
                run.update_status(exit_code=rc, exit_signal=name)  # the registry shows it as lost


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


# --------------------------------------------------------------------------- stop, resume, delete


def stop(run: str | os.PathLike | Job, cfg: JobConfig | None = None, wait: bool = False,
         timeout: float | None = None) -> Job:
    """Stop a job. Queued: marked ``stopped`` at once. Running: SIGTERM (checkpoint, ``stopped``), then SIGKILL
    after ``timeout`` (default ``stop_timeout_s`` of the job). With ``wait=False`` a detached watchdog
    (``python -m ttft jobs stop RUN``) does the waiting and escalation, so the caller returns at once."""
    cfg = cfg or JobConfig.from_env()
    job = get_job(run, cfg.root)
    path = job.path
    if timeout is None:
        timeout = float(job.meta.get("stop_timeout_s", cfg.stop_timeout_s))
    if job.status == "queued":
        with run_lock(path):
            r = RunDir(path)
            if r.status().get("status") == "queued":
                r.update_status(status="stopped", ended=time.time(), note="stopped while queued")
        sup = job.raw.get("supervisor_pid")
        if process_alive(sup, job.raw.get("supervisor_start")):
            _signal(sup, signal.SIGTERM)
        return get_job(path)
    if job.status not in ("running", "stopping"):
        return job
    pid, start = job.raw.get("pid"), job.raw.get("pid_start")
    if process_alive(pid, start):
        with run_lock(path):
            RunDir(path).update_status(stop_requested=time.time(), status="stopping")
        _signal(pid, signal.SIGTERM)
    if not wait:
        _spawn_detached([sys.executable, "-m", "ttft", "jobs", "stop", str(path), "--timeout", str(timeout)], None)
        return get_job(path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_alive(pid, start):
        time.sleep(0.05)
    killed = process_alive(pid, start)
    if killed:
        for p in [pid, *_descendants(pid)]:
            _signal(p, signal.SIGKILL)
        end = time.monotonic() + 10
        while time.monotonic() < end and process_alive(pid, start):
            time.sleep(0.05)
    # the job writes its final status (or its supervisor records the exit): give it a moment, then make sure a
    # job we stopped does not end up 'lost'
    end = time.monotonic() + (1 if killed else 5)
    while time.monotonic() < end and get_job(path).status in ACTIVE:
        time.sleep(0.05)
    with run_lock(path):
        r = RunDir(path)
        if r.status().get("status") not in TERMINAL and not process_alive(pid, start):
            why = f"killed with SIGKILL {timeout:g} s after SIGTERM" if killed else "ended by SIGTERM"
            r.update_status(status="stopped", ended=time.time(), note=f"{why} before it saved a checkpoint")
    return get_job(path)


def resume(run: str | os.PathLike | Job, cfg: JobConfig | None = None) -> Job:
    """Queue a stopped, failed or lost run again: ``train --resume RUN`` from its last checkpoint (a run that never
    started is launched again with its original command)."""
    cfg = cfg or JobConfig.from_env()
    job = get_job(run, cfg.root)
    if job.status not in RESUMABLE:
        raise JobError(f"{job.id} is {job.status}: only a stopped, failed or lost run can be resumed")
    if (job.path / "config.json").exists():
        argv = ["train", "--resume", str(job.path)]
        kind = job.meta.get("kind") or device_kind(job.config().get("device"))
    elif job.meta.get("argv"):
        argv, kind = list(job.meta["argv"]), job.meta.get("kind", "cpu")
    else:
        raise JobError(f"{job.id}: nothing to resume (no config.json and no recorded command)")
    return _enqueue(job.path, argv, kind, cfg, job.meta.get("config") or job.config() or None)


def delete(run: str | os.PathLike | Job, cfg: JobConfig | None = None) -> Path:
    """Delete a run folder. Refuses a running job (stop it first); a queued one is stopped first."""
    cfg = cfg or JobConfig.from_env()
    job = get_job(run, cfg.root)
    if job.status in ("running", "stopping"):
        raise JobError(f"{job.id} is {job.status}: stop it before deleting it")
    if job.status == "queued":
        job = stop(job, cfg)
        if job.status in ACTIVE:
            raise JobError(f"{job.id} is {job.status}: could not stop it")
    shutil.rmtree(job.path)
    return job.path


# --------------------------------------------------------------------------- the command a config gives


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "ttft", *argv])


# --------------------------------------------------------------------------- metrics (cheap to refresh)


