"""One run lifecycle, shared by ``train``, ``predict`` and ``experiment``.

A run writes its life into its folder's ``status.json`` (atomically, :meth:`RunDir.update_status`)::

    with RunLifecycle(run).start(step=0, max_steps=100) as life:   # running, pid, pid_start, started
        while work_left() and not life.requested:                  # SIGTERM/SIGINT set the flag (-> stopping)
            ...
            life.update(step=k)                                    # progress fields
        life.finish()                                              # stopped if a stop was requested, else finished
    # an exception inside the block: failed, with ``error`` and the traceback's tail (log.txt gets all of it)

Transitions: (``queued`` →) ``running`` → ``stopping`` → ``stopped``, ``running`` → ``finished`` or ``failed``.
``pid`` and ``pid_start`` (the process start time from ``/proc``) are recorded when running starts, so the registry
tells a live run from a dead one (``lost``) and a reused pid from the run's own. Exit codes (:data:`EXIT_CODES`):
``finished`` and ``stopped`` exit 0, ``failed`` 1 (the exception propagates); a process killed by a signal has no
final status and its supervisor records the signal.

Started by a job supervisor (``$TTFT_JOB_DIR`` names the job folder) into another folder than the job's (an
experiment launched with ``jobs launch``, an experiment's stage, a prediction with ``--out``), the run and the job
are linked: the job's status gets ``run_dir`` (the registry reads the run's progress through it and the supervisor
copies its final status), the run's status gets ``job`` (the registry lists the run through its job).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from ttft.runs.process import JOB_DIR_ENV, run_lock
from ttft.runs.rundir import TERMINAL, RunDir, disk_full_error, process_start_time, write_json_atomic

#: the exit status of a process whose run ended with each terminal status
EXIT_CODES = {"finished": 0, "stopped": 0, "failed": 1}

#: fields of a previous life of the same folder that a new start clears
_STALE = ("ended", "error", "traceback", "note", "exit_code", "exit_signal", "job")


class RunLifecycle:
    """The status of one run in its folder, the stop flag its work loop polls, and the signal handlers behind it.

    ``write=False`` (a non-zero torchrun rank) keeps the flag and the handlers but writes nothing.
    ``stop_message`` is logged with the signal's name when a stop is requested.
    """

    def __init__(
        self, run: RunDir | str | os.PathLike, *, write: bool = True, stop_message: str = "stopping at the next step"
    ):
        self.run = run if isinstance(run, RunDir) else RunDir(Path(run))
        self.write = write
        self.stop_message = stop_message
        self.stop_requested = False
        self.signal_name = ""
        self.status: str | None = None
        self._old_handlers: dict = {}

    # ------------------------------------------------------------------ the stop flag

    @property
    def requested(self) -> bool:
        """Whether a stop was requested (SIGTERM, SIGINT or :meth:`request_stop`): the work loop polls this."""
        return self.stop_requested

    def request_stop(self, why: str = "stop requested") -> None:
        self.stop_requested = True
        if self.write and self.status == "running":
            try:  # no lock here: this runs inside a signal handler, maybe while the main thread holds it
                self.run.update_status(status="stopping")
                self.status = "stopping"
                self.run.log(f"{why}: {self.stop_message}")
            except OSError:
                pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.request_stop(f"{self.signal_name} received")

    def install_signals(self) -> None:
        """SIGTERM and SIGINT set the stop flag (only in the main thread, where Python delivers signals)."""
        if self._old_handlers or threading.current_thread() is not threading.main_thread():
            return
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[s] = signal.signal(s, self._on_signal)

    def restore_signals(self) -> None:
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        self._old_handlers.clear()

    # ------------------------------------------------------------------ transitions

    def start(self, **fields: Any) -> RunLifecycle:
        """``running`` with this process's pid and start time (``stopping`` if a stop came in already)."""
        self.install_signals()
        if self.write:
            pid = os.getpid()
            self.run.path.mkdir(parents=True, exist_ok=True)
            with run_lock(self.run.path):
                st = {k: v for k, v in self.run.status().items() if k not in _STALE}
                now = time.time()
                st.update(
                    status="stopping" if self.stop_requested else "running",
                    pid=pid,
                    pid_start=process_start_time(pid),
                    started=now,
                    **fields,
                    updated=now,
                )
                write_json_atomic(self.run.status_file, st)
            self.run.reserve_space()  # so that the final status can be written on a full disk
            self._link_job()
        self.status = "stopping" if self.stop_requested else "running"
        return self

    def update(self, **fields: Any) -> None:
        """Progress fields (step, done, ...) into status.json."""
        if self.write:
            self.run.update_status(**fields)

    def log(self, msg: str) -> None:
        if self.write:
            self.run.log(msg)

    def finish(self, status: str | None = None, **fields: Any) -> str:
        """The terminal status: ``status`` when given, else ``stopped`` when a stop was requested, else
        ``finished``; ``fields`` (results) are written with it."""
        status = status or ("stopped" if self.stop_requested else "finished")
        if status not in TERMINAL:
            raise ValueError(f"not a terminal status: {status!r}")
        self._end(status, **fields)
        return status

    def fail(self, exc: BaseException) -> None:
        """``failed`` with the error and the end of its traceback (the whole traceback goes to log.txt). A write
        that failed for lack of space says so first (``disk full: …``). On a full disk the status is written with
        the space the run kept at its start (``.reserve``); if even that fails, the original error propagates."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        error = f"{type(exc).__name__}: {exc}"
        if full := disk_full_error(exc, self.run.path):
            error = f"{full} ({error})" if full.startswith("disk full") else f"{error} ({full})"
        if self.write:
            try:
                self.run.log(tb)
            except OSError:
                pass
        try:
            self._end("failed", error=error[:2000], traceback=tb[-4000:])
        except OSError:
            self.status = "failed"

    def _end(self, status: str, **fields: Any) -> None:
        if self.write:
            with run_lock(self.run.path):
                self.run.update_status(status=status, ended=time.time(), **fields)
            self.run.release_reserve()  # the final status is written: the space kept for it is not needed
        self.status = status

    @property
    def exit_code(self) -> int | None:
        """The exit status this run's process should end with (None while it runs)."""
        return EXIT_CODES.get(self.status or "")

    def __enter__(self) -> RunLifecycle:
        return self if self.status is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.status not in TERMINAL:
                if exc is not None:
                    self.fail(exc)
                else:
                    self.finish()
        finally:
            self.restore_signals()

    # ------------------------------------------------------------------ the job that runs it

    def _link_job(self) -> None:
        job = os.environ.get(JOB_DIR_ENV)
        if not job or not Path(job).is_dir():
            return
        jp = Path(job).absolute()
        if jp.resolve() == self.run.path.resolve():
            return  # the job's own folder (a launched train run): nothing to link
        jd = RunDir(jp)
        with run_lock(jp):
            if jd.status().get("pid") != os.getpid():
                return  # inherited by a process the job's process started (a stage, a torchrun worker)
            jd.update_status(run_dir=str(self.run.path.absolute()))
        self.run.update_status(job=str(jp))
