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
from collections.abc import Callable, Sequence
from pathlib import Path

from ttft.runs import warm
from ttft.runs.exits import finalize
from ttft.runs.integrity import JOB_FIELDS, fields_problem, read_json_checked
from ttft.runs.process import (
    JOB_DIR_ENV,
    _descendants,
    _signal,
    _spawn_detached,
    device_kind,
    process_alive,
    run_lock,
    try_acquire_slot,
)
from ttft.runs.registry import (
    ORCHESTRATOR,
    Job,
    JobConfig,
    JobError,
    _contains,
    _inside,
    _unique,
    derive_status,
    get_job,
    job_dirs,
    queue_root,
    resolve,
)
from ttft.runs.rundir import (
    ACTIVE,
    JOB_FILE,
    RESUMABLE,
    STDERR_FILE,
    STDOUT_FILE,
    SUPERVISOR_FILE,
    TERMINAL,
    RunDir,
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


_CLEARED_ON_QUEUE = (
    "pid",
    "pid_start",
    "ended",
    "error",
    "traceback",
    "exit_code",
    "exit_signal",
    "stop_requested",
    "note",
    "supervisor_pid",
    "supervisor_start",
    "slot",
    "run_dir",
    "started",
)

#: the one slot of the ``experiment`` kind: one experiment (orchestrator) at a time per runs folder
ORCHESTRATOR_SLOTS = 1


def job_kind(argv: Sequence[str], kind: str) -> str:
    """The slot kind a command takes: an ``experiment`` only orchestrates cpu/gpu stage jobs, so it takes the
    ``experiment`` slot whatever it was launched as (it must not hold a slot its own stages wait for)."""
    return ORCHESTRATOR if list(argv[:1]) == ["experiment"] else kind


def _enqueue(
    path: Path, argv: list[str], kind: str, cfg: JobConfig, config: dict | None, extra: dict | None = None
) -> Job:
    """Queue ``argv`` as the job of the folder ``path`` and start its supervisor. A folder outside the runs folder
    (``train --run-dir`` elsewhere) is linked into it, so that it is listed and waits in the same queue and slots.
    A write that fails (a full disk, a read-only folder) raises JobError saying so."""
    path = Path(path).absolute()
    try:
        return _enqueue_in(path, argv, kind, cfg, config, extra)
    except OSError as e:
        raise JobError(f"cannot queue {path.name}: {e.strerror or e} (writing in {path})") from None


def _enqueue_in(path: Path, argv: list[str], kind: str, cfg: JobConfig, config: dict | None, extra: dict | None) -> Job:
    kind = job_kind(argv, kind)
    now = time.time()
    old = read_json(path / JOB_FILE, {}) or {}
    meta = {
        "argv": argv,
        "kind": kind,
        "slots": ORCHESTRATOR_SLOTS if kind == ORCHESTRATOR else cfg.slots(kind),
        "stop_timeout_s": cfg.stop_timeout_s,
        "poll_s": cfg.poll_s,
        "cwd": os.getcwd(),
        "python": sys.executable,
        "root": str(cfg.root),
        "created": old.get("created", now),
        "queued_at": now,
        "launches": int(old.get("launches", 0)) + 1,
        "config": config if config is not None else old.get("config"),
        **(extra or {}),
    }
    write_json_atomic(path / JOB_FILE, meta)
    RunDir(path).reserve_space()
    link_into_root(path, cfg.root)
    with run_lock(path):
        st = {k: v for k, v in RunDir(path).status().items() if k not in _CLEARED_ON_QUEUE}
        st.update(status="queued", queued_at=now, kind=kind, updated=now)
        write_json_atomic(path / "status.json", st)
    try:
        sup = _spawn_detached(
            [sys.executable, "-m", "ttft", "jobs", "wait-and-run", str(path)], path / SUPERVISOR_FILE, cwd=meta["cwd"]
        )
    except OSError as e:  # not queued after all: say why in its status (written with the space the run kept)
        with run_lock(path):
            RunDir(path).update_status(
                status="failed", ended=time.time(), error=f"could not start its queue process: {e.strerror or e}"
            )
        raise
    with run_lock(path):
        run = RunDir(path)
        if run.status().get("status") == "queued" and "supervisor_pid" not in run.status():
            run.update_status(supervisor_pid=sup.pid, supervisor_start=process_start_time(sup.pid))
    return get_job(path, cfg.root)


def link_into_root(path: Path, root: Path) -> Path | None:
    """A run folder outside the runs folder gets a symbolic link ``<root>/<its name>`` (``-2``, ``-3``... when the
    name is taken), so the registry lists it and the queue counts it; None when it is inside already."""
    path, root = Path(path).absolute(), Path(root).absolute()
    if _inside(path, root):
        return None
    root.mkdir(parents=True, exist_ok=True)
    base = safe_name(path.name)
    for i in range(1000):
        cand = root / (base if i == 0 else f"{base}-{i + 1}")
        if cand.is_symlink() and cand.resolve() == path.resolve():
            return cand
        if not cand.exists() and not cand.is_symlink():
            os.symlink(path, cand, target_is_directory=True)
            return cand
    raise JobError(f"cannot link {path} into {root}")


# --------------------------------------------------------------------------- stages of an experiment


def enqueue_stage(
    argv: Sequence[str],
    name: str,
    kind: str,
    cfg: JobConfig | None = None,
    run_dir: str | os.PathLike | None = None,
    owner: str | os.PathLike | None = None,
    module: str = "ttft",
) -> Job:
    """Queue one stage of an orchestrating process (an experiment's ``train``/``predict`` command) as a job of its
    own, ``<runs>/<name>/``, in the same queue and slots as every other job: ``python -m <module> <argv>`` of
    ``kind`` (cpu or gpu). ``run_dir`` is the folder the command writes (linked: the registry reads its progress
    and final status through it). ``owner`` (the experiment folder) and this process's pid and start time are
    recorded: a stage whose owner process is gone is stopped by its supervisor. A stage folder of the same owner
    from an earlier attempt is reused (stopped first if it is still active)."""
    cfg = (cfg or JobConfig.from_env()).validate()
    root = cfg.root
    root.mkdir(parents=True, exist_ok=True)
    owner_path = str(Path(owner).absolute()) if owner else None
    base = safe_name(name)  # never '.', '..' or a path: the stage folder is a child of the runs folder
    for i in range(1000):
        path = root / (base if i == 0 else f"{base}-{i + 1}")
        if not path.exists() and not path.is_symlink():
            path.mkdir()
            break
        prev = read_json(path / JOB_FILE, {}) or {}
        if owner_path and (prev.get("owner") or {}).get("path") == owner_path:
            job = get_job(path, root)
            if job.active:
                stop(job, cfg, wait=True)
            break
    else:
        raise JobError(f"cannot create a stage folder {base} in {root}")
    me = os.getpid()
    extra = {
        "module": module,
        "stage": True,
        "run_dir": str(Path(run_dir).absolute()) if run_dir else None,
        "owner": {"path": owner_path, "pid": me, "pid_start": process_start_time(me)},
    }
    return _enqueue(path, [str(a) for a in argv], kind, cfg, None, extra)


def wait_for(
    run: str | os.PathLike | Job,
    cfg: JobConfig | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    poll: float | None = None,
) -> Job:
    """Wait until a job has ended (``finished``, ``failed``, ``stopped`` or ``lost``) and return it. When
    ``should_stop()`` turns true first, the job is stopped (:func:`stop`, waiting for it) and returned."""
    cfg = cfg or JobConfig.from_env()
    path = get_job(run, cfg.root).path
    poll = cfg.poll_s if poll is None else poll
    while True:
        job = get_job(path, cfg.root)
        if job.status not in ACTIVE:
            return job
        if should_stop():
            return stop(job, cfg, wait=True)
        time.sleep(poll)


# --------------------------------------------------------------------------- the supervisor


def _queue_head(path: Path, kind: str, root: Path | None = None) -> bool:
    """Whether this run is first among the queued runs of its kind in its runs folder (a run reached twice, in the
    folder and through a link, counts once)."""
    root = root or path.parent
    queued = []
    me = path.resolve()
    for p in _unique([path, *job_dirs(root)]):
        raw = read_json(p / "status.json", {}) or {}
        if raw.get("status") != "queued" or raw.get("kind", (read_json(p / JOB_FILE, {}) or {}).get("kind")) != kind:
            continue
        rp = p.resolve()
        if rp != me and derive_status(raw, {})[0] != "queued":
            continue  # a dead waiter does not hold the queue
        q = raw.get("queued_at")
        queued.append((float(q) if isinstance(q, (int, float)) else 0.0, rp.name, str(rp), rp))
    return bool(queued) and min(queued)[3] == me


def _owner_gone(meta: dict) -> str:
    """Why the process that queued this stage is gone ('' while it lives or when there is none)."""
    o = meta.get("owner") or {}
    if not o.get("pid") or process_alive(o.get("pid"), o.get("pid_start")):
        return ""
    return f"its experiment's process ({o['pid']}) is gone"


def wait_and_run(run_dir: str | os.PathLike) -> int:
    """The supervisor of one job (``python -m ttft jobs wait-and-run RUN``): wait for the turn and a slot, run the
    command as a child holding the slot lock, record a final status if the child did not."""
    path = Path(run_dir).absolute()
    run = RunDir(path)
    meta, why = read_json_checked(path / JOB_FILE)
    why = why or (fields_problem(meta, JOB_FIELDS, JOB_FILE) if meta else f"no {JOB_FILE}")
    if why is None and (not meta or not meta.get("argv") or not meta.get("kind")):
        why = f"{JOB_FILE} has no command (argv) or kind"
    if why is not None or meta is None:
        print(f"{path}: {why}", file=sys.stderr)
        return 2
    kind, slots, poll = meta["kind"], int(meta.get("slots", 1)), float(meta.get("poll_s", 0.25))
    root = queue_root(path, meta)
    me = {"supervisor_pid": os.getpid(), "supervisor_start": process_start_time(os.getpid())}
    with run_lock(path):
        st = run.status()
        if st.get("status") != "queued":
            return 0
        if st.get("supervisor_pid") not in (None, os.getpid()) and process_alive(
            st.get("supervisor_pid"), st.get("supervisor_start")
        ):
            print(f"{path}: another supervisor ({st['supervisor_pid']}) owns this job", file=sys.stderr)
            return 0
        run.update_status(**me)
    flag = {"stop": False}
    child: list[warm.WarmProcess | subprocess.Popen] = []

    def on_signal(signum, frame):
        if child:
            _signal(child[0].pid, signal.SIGTERM)  # the job checkpoints and stops
        else:
            flag["stop"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    got = None
    while got is None:
        gone = _owner_gone(meta)
        if flag["stop"] or gone:
            with run_lock(path):
                if run.status().get("status") == "queued":
                    run.update_status(
                        status="stopped", ended=time.time(), note="stopped while queued" + (f": {gone}" if gone else "")
                    )
            return 0
        st = run.status()
        if st.get("status") != "queued" or st.get("supervisor_pid") != os.getpid():
            return 0  # stopped, deleted or taken over while waiting
        if _queue_head(path, kind, root):
            try:
                got = try_acquire_slot(root, kind, slots, holder=path.name)
            except OSError as e:  # the locks folder cannot be written (a full disk, read-only): say so, not 'lost'
                with run_lock(path):
                    run.update_status(
                        status="failed",
                        ended=time.time(),
                        error=f"cannot take a {kind} slot in {root}: {e.strerror or e}",
                    )
                return 1
        if got is None:
            time.sleep(poll)
    fd, slot = got
    with run_lock(path):
        st = run.status()
        if st.get("status") != "queued" or flag["stop"]:
            if st.get("status") == "queued":
                run.update_status(status="stopped", ended=time.time(), note="stopped while queued")
            return 0
        env = {**os.environ, JOB_DIR_ENV: str(path)}
        cmd = [sys.executable, "-m", meta.get("module") or "ttft", *meta["argv"]]
        with open(path / STDOUT_FILE, "ab") as out, open(path / STDERR_FILE, "ab") as err:
            p = warm.start_job(root, meta.get("module") or "ttft", cmd, meta.get("cwd"), env, out, err, fd)
        child.append(p)
        run.update_status(
            status="running", pid=p.pid, pid_start=process_start_time(p.pid), slot=f"{kind}-{slot}", started=time.time()
        )
    print(f"{time.strftime('%H:%M:%S')} started pid {p.pid} in slot {kind}-{slot}: {shlex.join(cmd[2:])}", flush=True)
    rc = _wait_child(p, path, meta, poll)
    os.close(fd)
    try:
        finalize(path, rc)
    except OSError as e:  # a full disk: the job wrote its own final status with the space it kept, if it could
        print(f"{time.strftime('%H:%M:%S')} could not record the exit ({e})", flush=True)
    print(f"{time.strftime('%H:%M:%S')} pid {p.pid} exited with {rc}; status {run.status().get('status')}", flush=True)
    return 0


def _wait_child(p: warm.WarmProcess | subprocess.Popen, path: Path, meta: dict, poll: float) -> int:
    """Wait for the job's process; a stage whose owner is gone is stopped (SIGTERM, SIGKILL after the timeout)."""
    if not meta.get("owner"):
        return p.wait()
    kill_at = None
    while (rc := p.poll()) is None:
        if kill_at is None and (gone := _owner_gone(meta)):
            with run_lock(path):
                RunDir(path).update_status(status="stopping", stop_requested=time.time(), note=f"stopped: {gone}")
            _signal(p.pid, signal.SIGTERM)
            kill_at = time.monotonic() + float(meta.get("stop_timeout_s", 30))
        elif kill_at is not None and time.monotonic() > kill_at:
            for q in [p.pid, *_descendants(p.pid)]:
                _signal(q, signal.SIGKILL)
            kill_at = float("inf")
        time.sleep(min(poll, 0.5))
    return rc


# --------------------------------------------------------------------------- stop, resume, delete


def stop(
    run: str | os.PathLike | Job, cfg: JobConfig | None = None, wait: bool = False, timeout: float | None = None
) -> Job:
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
                r.release_reserve()
        sup = job.raw.get("supervisor_pid")
        if process_alive(sup, job.raw.get("supervisor_start")):
            _signal(sup, signal.SIGTERM)
        return get_job(path)
    if job.status not in ("running", "stopping"):
        return job
    pid, start = job.raw.get("pid"), job.raw.get("pid_start")
    pid = pid if isinstance(pid, int) else 0  # 0: never alive, never signalled
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
    """Queue a stopped, failed or lost run again: a training run as ``train --resume RUN`` from its last
    checkpoint, an experiment folder as ``experiment <name> --out RUN`` (the rows done are skipped); a job that
    never started, or whose command writes elsewhere, is launched again with its original command. An experiment's
    stage is resumed by running its experiment again."""
    cfg = cfg or JobConfig.from_env()
    job = get_job(run, cfg.root)
    if job.status == "corrupt":
        raise JobError(f"{job.id} is corrupt ({job.note}): it cannot be resumed; repair the file or delete the run")
    if job.status not in RESUMABLE:
        raise JobError(f"{job.id} is {job.status}: only a stopped, failed or lost run can be resumed")
    conf = read_json(job.path / "config.json")
    conf = conf if isinstance(conf, dict) else None
    if job.meta.get("stage"):
        owner = (job.meta.get("owner") or {}).get("path")
        raise JobError(
            f"{job.id} is a stage of the experiment {owner}: run the experiment again (the rows done are skipped)"
        )
    if conf is not None and conf.get("experiment"):
        argv, kind = ["experiment", str(conf["experiment"]), "--out", str(job.path)], ORCHESTRATOR
    elif conf is not None and conf.get("kind") != "predict":
        argv = ["train", "--resume", str(job.path)]
        kind = job.meta.get("kind") or device_kind(conf.get("device"))
    elif job.meta.get("argv"):
        argv, kind = list(job.meta["argv"]), job.meta.get("kind", "cpu")
    else:
        raise JobError(f"{job.id}: nothing to resume (no config.json and no recorded command)")
    return _enqueue(job.path, argv, kind, cfg, job.meta.get("config") or job.config() or None)


def delete(run: str | os.PathLike | Job, cfg: JobConfig | None = None) -> Path:
    """Delete a run folder (only a ttft run: see :func:`ttft.runs.registry.resolve`). Refuses a running job (stop
    it first); a queued one is stopped first. A run that is a symbolic link (a run outside the runs folder, linked
    into it) loses the link only: the folder it points to is kept (:func:`delete_text` says so)."""
    cfg = cfg or JobConfig.from_env()
    path = resolve(run, cfg.root)
    root = cfg.root
    if _contains(path, root):
        raise JobError(f"{path} is the runs folder (or holds it), not a run")
    job = get_job(path, cfg.root)
    if job.status in ("running", "stopping"):
        raise JobError(f"{job.id} is {job.status}: stop it before deleting it")
    if job.status == "queued":
        job = stop(job, cfg)
        if job.status in ACTIVE:
            raise JobError(f"{job.id} is {job.status}: could not stop it")
    try:
        if path.is_symlink():
            os.unlink(path)
        else:
            shutil.rmtree(path)
    except OSError as e:
        raise JobError(f"could not delete all of {path}: {e.strerror or e}") from None
    return path


def delete_text(path: Path, target: Path | None) -> str:
    """What :func:`delete` did, for a person: the folder deleted, or the link removed and the folder kept."""
    if target is not None:
        kept = "was kept" if target.exists() else "no longer exists"
        return f"removed the link {path}; the run folder it points to, {target}, {kept}"
    return f"deleted {path}"


# --------------------------------------------------------------------------- the command a config gives


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "ttft", *argv])


# --------------------------------------------------------------------------- metrics (cheap to refresh)
