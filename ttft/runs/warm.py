"""A warm worker: a process that has already imported torch and transformers and forks a job's process from itself,
so that a small job (a Try, a one-task prediction) does not spend its first ~7 s importing them.

``python -m ttft jobs warm`` (started by the app's Try page, detached; :func:`ensure`) imports the modules the CLI
layer gives it, then listens on ``<runs>/.warm/worker.sock``. A job's supervisor (:func:`ttft.runs.jobs.wait_and_run`)
asks it for the job's process (:func:`spawn`) only when the worker can run exactly what a fresh
``python -m ttft ARGV`` would: the same Python, the same environment (whatever was read at import time is the
same), the same ttft sources (their fingerprint is checked before every fork). Otherwise — no worker, another
environment, a stale worker, any error talking to it — the supervisor starts a fresh process as before, so the
worker only ever changes how fast a job starts, never what it computes.

The protocol (one connection per job, JSON lines): the supervisor sends ``{"argv", "cwd", "env", "source"}`` with
the job's stdin/stdout/stderr and its slot-lock descriptor attached (SCM_RIGHTS); the worker forks a middle process
that forks the job's process (a new session, those descriptors as its stdio, the environment and working directory
set, then the CLI run in it) and answers ``{"pid"}``, then ``{"rc"}`` when it exits. The worker stays single-
threaded (it never forks while another thread could hold a lock) and exits after :data:`IDLE_S` without a job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from ttft.runs.process import _spawn_detached, process_alive
from ttft.runs.rundir import process_start_time, write_json_atomic

WARM_DIR = ".warm"
SOCKET, INFO = "worker.sock", "worker.json"
#: the worker exits after this long without a job
IDLE_S = 15 * 60
#: set to 0 to never start a warm worker
ENABLE_ENV = "TTFT_WARM_WORKER"
#: environment variables that differ between a job's environment and the worker's without changing what runs
VOLATILE_ENV = ("TTFT_JOB_DIR", "_", "OLDPWD", "PWD", "SHLVL")


def warm_dir(root: Path) -> Path:
    return Path(root) / WARM_DIR


def source_fingerprint() -> str:
    """The ttft package's sources (paths, sizes, modification times): a worker whose imports are older than the
    files on disk would run other code than a fresh process."""
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for p in sorted(pkg.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(pkg)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _env_key(env: dict) -> str:
    keep = {k: v for k, v in sorted(env.items()) if k not in VOLATILE_ENV}
    return hashlib.sha256(json.dumps(keep).encode()).hexdigest()  # a digest: the file never holds a secret


def info(root: Path) -> dict | None:
    """The live worker of a runs folder (its worker.json), or None."""
    try:
        got = json.loads((warm_dir(root) / INFO).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(got, dict) or not process_alive(got.get("pid"), got.get("pid_start")):
        return None
    return got


def ensure(root: Path) -> bool:
    """Start the runs folder's warm worker unless one is alive (detached: it outlives the page and the app).
    Returns whether one was started. ``TTFT_WARM_WORKER=0`` turns this off (every job then starts fresh)."""
    if os.environ.get(ENABLE_ENV, "1") == "0" or info(root) is not None:
        return False
    d = warm_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    _spawn_detached([sys.executable, "-m", "ttft", "jobs", "warm", "--root", str(root)], d / "worker.log")
    return True


class WarmProcess:
    """A job's process forked by the worker, with the part of :class:`subprocess.Popen` the supervisor uses."""

    def __init__(self, conn: socket.socket, pid: int):
        self.conn, self.pid = conn, pid
        self.returncode: int | None = None
        self._buf = b""

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self.conn], [], [], 0)[0]:
            self._read()
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            self._read()
        return self.returncode

    def _read(self) -> None:
        chunk = self.conn.recv(4096)
        if not chunk:  # the worker went away without telling: the job's process is gone with an unknown status
            self.returncode = self._wait_gone()
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            msg = json.loads(line)
            if "rc" in msg:
                self.returncode = int(msg["rc"])
        if self.returncode is not None:
            self.conn.close()

    def _wait_gone(self) -> int:
        while process_alive(self.pid):
            time.sleep(0.2)
        return -signal.SIGKILL


def spawn(root: Path, argv: Sequence[str], cwd: str | None, env: dict, fds: Sequence[int]) -> WarmProcess | None:
    """The job's process from the warm worker (``fds``: its stdin, stdout, stderr, then descriptors it keeps), or
    None when there is no worker that runs exactly what a fresh process would (then start one as usual)."""
    got = info(root)
    if got is None or got.get("python") != sys.executable or got.get("env") != _env_key(env):
        return None
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(str(warm_dir(root) / SOCKET))
        req = {"argv": list(argv), "cwd": cwd, "env": env, "source": source_fingerprint()}
        socket.send_fds(conn, [json.dumps(req).encode() + b"\n"], list(fds))
        line = b""
        while not line.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return None
            line += chunk
        msg = json.loads(line)
    except (OSError, ValueError):
        return None
    if not msg.get("pid"):
        conn.close()
        return None
    conn.settimeout(None)
    return WarmProcess(conn, int(msg["pid"]))


def start_job(
    root: Path, module: str, cmd: list[str], cwd: str | None, env: dict, out: IO, err: IO, fd: int
) -> WarmProcess | subprocess.Popen:
    """A job's process (``cmd``: ``python -m MODULE ARGV``, stdout/stderr to the files ``out``/``err``, keeping the
    slot lock ``fd``): forked by the runs folder's warm worker when one runs exactly what a fresh process would (the
    imports done), else a fresh process."""
    if module == "ttft":
        with open(os.devnull, "rb") as null:
            p = spawn(root, cmd[3:], cwd, env, [null.fileno(), out.fileno(), err.fileno(), fd])
        if p is not None:
            print(f"{time.strftime('%H:%M:%S')} forked by the warm worker (pid {p.pid})", flush=True)
            return p
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=env, pass_fds=(fd,))


def serve(root: Path, run_cli: Callable[[list[str]], int], env_before: dict, idle_s: float = IDLE_S) -> int:
    """The worker's loop (its modules already imported by the caller; ``env_before``: its environment before those
    imports): one job per connection, until idle. A job gets its own environment plus what the imports set in it
    (as they would have in a fresh process)."""
    added = {k: v for k, v in os.environ.items() if env_before.get(k) != v}
    d = warm_dir(root)
    d.mkdir(parents=True, exist_ok=True)
    path = d / SOCKET
    me = {"pid": os.getpid(), "pid_start": process_start_time(os.getpid())}
    source = source_fingerprint()
    with contextlib.suppress(OSError, ValueError):
        path.unlink()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    os.chmod(path, 0o600)
    srv.listen(8)
    write_json_atomic(d / INFO, {**me, "python": sys.executable, "env": _env_key(env_before), "source": source})
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop: clean up below (a job it forked keeps running)
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_s:
            _reap()
            if not select.select([srv], [], [], 1.0)[0]:
                continue
            conn, _ = srv.accept()
            last = time.monotonic()
            fds: list[int] = []
            try:
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 16)
                req = json.loads(msg)
                if req.get("source") != source or source_fingerprint() != source:
                    conn.sendall(b'{"stale": true}\n')  # the sources changed: let a fresh process run them
                    break
                _fork_job(conn, srv, {**req, "env": {**req["env"], **added}}, fds, run_cli)
            except (OSError, ValueError) as e:
                print(f"{time.strftime('%H:%M:%S')} a request failed: {e}", file=sys.stderr, flush=True)
            finally:
                conn.close()
                for fd in fds:
                    with contextlib.suppress(OSError, ValueError):
                        os.close(fd)
    finally:
        srv.close()
        with contextlib.suppress(OSError, ValueError):
            if (json.loads((d / INFO).read_text()) or {}).get("pid") == os.getpid():
                (d / INFO).unlink()
                path.unlink()
    return 0


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _fork_job(
    conn: socket.socket, srv: socket.socket, req: dict, fds: list[int], run_cli: Callable[[list[str]], int]
) -> None:
    if os.fork() != 0:
        return  # the worker: back to accepting (the middle process is reaped by _reap)
    # the middle process: fork the job's process, report its pid and exit code
    try:
        srv.close()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            _become_job(conn, req, fds, run_cli, w)
        os.close(w)
        os.read(r, 1)  # the job's process has set itself up (its session, stdio)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        for fd in fds:
            os.close(fd)
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        conn.sendall(json.dumps({"rc": rc}).encode() + b"\n")
    except BaseException:  # noqa: BLE001 - the middle process never returns into the worker's loop
        os._exit(1)
    os._exit(0)


def _become_job(
    conn: socket.socket, req: dict, fds: list[int], run_cli: Callable[[list[str]], int], ready_w: int
) -> None:
    code = 1
    try:
        conn.close()
        os.setsid()
        for target, fd in zip((0, 1, 2), fds[:3]):
            os.dup2(fd, target)
        for fd in fds[:3]:
            if fd > 2:
                os.close(fd)
        for fd in fds[3:]:
            os.set_inheritable(fd, True)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(req["env"])
        if req.get("cwd"):
            os.chdir(req["cwd"])
        sys.argv = [sys.argv[0], *req["argv"]]
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        os.write(ready_w, b"1")
        os.close(ready_w)
        code = int(run_cli(list(req["argv"])) or 0)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - print it as a fresh process would, then exit
        import traceback

        traceback.print_exc()
        code = 1
    import atexit

    with contextlib.suppress(OSError, ValueError):
        atexit._run_exitfuncs()  # what a fresh interpreter runs at its exit (the worker's stack is not unwound)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
