"""How a job's process ended, recorded in the job's status by its supervisor (:func:`finalize`): the final status
of the run it is linked to, the stop the user asked for (torchrun's way of ending on one included), a failure with
the end of stderr, or the signal that killed it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from ttft.runs.process import run_lock
from ttft.runs.registry import _link
from ttft.runs.rundir import JOB_FILE, STDERR_FILE, TERMINAL, RunDir, _tail, read_json

#: what the supervisor copies from a linked run's final status into the job's
_FINAL_FIELDS = ("status", "error", "traceback", "note", "ended")


#: what torchrun's agent raises when a signal it passed on to its processes ended them
TORCHRUN_STOPPED = "torch.distributed.elastic.multiprocessing.api.SignalException"


def finalize(path: Path, rc: int) -> None:
    """Record how the job's process ended when it did not write a final status itself: the final status of the run
    it is linked to (written by the same process), else from the exit code (0: ``finished``, or ``stopped`` when a
    stop was requested; > 0: ``failed`` with the end of stderr; a signal: ``exit_signal``, shown as ``lost``)."""
    run = RunDir(Path(path))
    with run_lock(run.path):
        st = run.status()
        now = time.time()
        link = _link(run.path, st, read_json(run.path / JOB_FILE, {}) or {})
        lst = (read_json(link / "status.json", {}) or {}) if link else {}
        if st.get("status") in TERMINAL:
            run.update_status(exit_code=rc)
        elif lst.get("status") in TERMINAL and st.get("pid") and lst.get("pid") == st.get("pid"):
            run.update_status(exit_code=rc, **{k: lst[k] for k in _FINAL_FIELDS if lst.get(k) is not None})
        elif rc == 0:
            if st.get("stop_requested"):
                run.update_status(status="stopped", exit_code=0, ended=now)
            else:
                run.update_status(status="finished", exit_code=0, ended=now)
        elif rc > 0 and st.get("stop_requested") and TORCHRUN_STOPPED in _tail(run.path / STDERR_FILE):
            # torchrun passes a SIGTERM on to its processes (they stop and save their checkpoints), then exits 1
            # raising this: the stop the user asked for, not a failure
            run.update_status(
                status="stopped",
                exit_code=rc,
                ended=now,
                note=f"torchrun passed the stop on to its processes and exited with status {rc}",
            )
        elif rc > 0:
            tail = _tail(run.path / STDERR_FILE)
            last = next((ln for ln in reversed(tail.splitlines()) if ln.strip()), f"exit status {rc}")
            run.update_status(
                status="failed",
                exit_code=rc,
                ended=now,
                error=st.get("error") or last.strip(),
                traceback=st.get("traceback") or tail,
            )
        else:
            name = _signame(-rc)
            if st.get("stop_requested"):
                run.update_status(
                    status="stopped",
                    exit_code=rc,
                    exit_signal=name,
                    ended=now,
                    note=f"ended by {name} before it saved a checkpoint",
                )
            else:
                run.update_status(exit_code=rc, exit_signal=name)  # the registry shows it as lost
    run.release_reserve()


def _signame(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"
