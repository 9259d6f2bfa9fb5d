"""The process pool of live training: the lab's own fork server, and the server's view of each worker.

A fresh interpreter, ``python -m vae_core.forkserver``, is started with the app. It imports torch
and the core once, decodes the built-in datasets, and then waits; each training job gets a worker
forked from it, which has all of that already (Start → first step in well under a second)::

    server ── Fork(rid) + the worker's end of a new pipe (SCM_RIGHTS) ──► fork server ── fork() ──► worker
    server ◄── Ready(pid, core) · Forked(rid, pid) · Exited(pid, code) ──  fork server
    server ◄─────────────── the job's own messages (vae_core.messages) over that pipe ──────────────► worker

Why our own: ``multiprocessing``'s spawn and forkserver contexts re-run the parent's ``__main__``
in each child, and under Streamlit that is the app script itself. Forking the server directly is
no better: it runs many threads, and a fork keeps only the calling one (a lock held by another
thread stays held forever in the child).

What the fork server does, in order, and why:

1. sets the OpenMP environment (``OMP_WAIT_POLICY``, thread counts): OpenMP reads it once, when
   torch loads, and the workers inherit what it read;
2. imports torch, :mod:`vae_core.worker` (the child's loop and everything it imports), and torch's
   compiler stack, which the first optimizer of a process imports otherwise (about 1 s; through the
   public ``torch.compiler.disable``, which runs no tensor op);
3. decodes the built-in datasets that are on this machine (numpy only), so that every worker reads
   the same pages instead of a private copy;
4. runs **no torch op** (OpenMP's thread pool does not survive a fork) and touches no CUDA device
   (a worker picks its device after the fork), and calls ``gc.freeze()`` before each fork, so that
   the collector does not write to the pages the workers share.

Each worker sets its own thread count and device. Orphans: the fork server exits when its control
socket reads EOF (the server closed it, or died: nothing else holds it) or its parent changes; each
worker has ``PR_SET_PDEATHSIG`` = SIGKILL towards the fork server (Linux), and watches its own pipe
to the server. Nothing here imports torch at import time: ``app.py`` starts the pool before any page.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import gc
import itertools
import json
import os
import pickle
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path

__all__ = [
    "ForkServer",
    "WorkerProcess",
    "Ended",
    "cpu_count",
    "default_pool",
    "ENV_WAIT_POLICY",
    "ENV_WORKER_NICE",
    "worker_nice",
    "server_openmp_env",
    "CLOSE_TIMEOUT_S",
    "main",
]

ENV_WAIT_POLICY = "VAE_LAB_WORKER_WAIT_POLICY"  # OMP_WAIT_POLICY of workers (default PASSIVE; "ACTIVE" spins)
ENV_WORKER_NICE = "VAE_LAB_WORKER_NICE"  # how much lower a worker's CPU priority is than the server's
DEFAULT_WORKER_NICE = 5  # page reruns first: training takes the cores the pages leave, and loses nothing
CLOSE_TIMEOUT_S = 3.0  # seconds a closing worker gets before it is killed
EXIT_CODE_WAIT_S = (
    2.0  # after a worker's pipe closed: how long to wait for the fork server's word on its exit
)
POLL_S = 0.1  # the fork server's loop: how often it reaps children and checks its parent
WORKER_NAME = b"vae-lab-worker"  # /proc/PID/comm of a worker (15 bytes at most), for ps and the tests
SERVER_NAME = b"vae-lab-forksrv"  # ... and of the fork server
_PR_SET_NAME, _PR_SET_PDEATHSIG = 15, 1  # linux/prctl.h


def cpu_count() -> int:
    """The cores this process may use (``sched_getaffinity``: containers, taskset), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# ====================================================================== the pool's protocol
@dataclass(frozen=True)
class Fork:
    """Server → fork server: fork a worker for request ``rid``; the worker's pipe end travels with it."""

    rid: int


@dataclass(frozen=True)
class Ready:
    """Fork server → server: imports done, forks from now on are lean. ``core``: the vae_core it imported."""

    pid: int
    core: str


@dataclass(frozen=True)
class Forked:
    """Fork server → server: request ``rid`` is worker ``pid``."""

    rid: int
    pid: int


@dataclass(frozen=True)
class Exited:
    """Fork server → server: worker ``pid`` ended; ``code`` as :attr:`subprocess.Popen.returncode` (-N: signal N)."""

    pid: int
    code: int


@dataclass(frozen=True)
class Ended:
    """What a :class:`WorkerProcess` tells its listener last: the pipe closed and the worker ended.

    ``code`` is None when nobody could tell (the fork server was gone too).
    """

    code: int | None


_PROTOCOL: dict[str, type[Fork | Ready | Forked | Exited]] = {
    c.__name__: c for c in (Fork, Ready, Forked, Exited)
}


def _encode(msg: Fork | Ready | Forked | Exited) -> bytes:
    """One message of the pool's protocol as JSON: small, plain, and nothing to unpickle."""
    return json.dumps({"type": type(msg).__name__, **dataclasses.asdict(msg)}).encode()


def _decode(data: bytes) -> Fork | Ready | Forked | Exited | None:
    """The message in ``data``, or None when it is not one of the protocol's."""
    try:
        d = json.loads(data)
        return _PROTOCOL[d.pop("type")](**d)
    except (ValueError, KeyError, TypeError):
        return None


def _dumps(msg: object) -> bytes:
    """A job's message to a worker. Plain pickle, tensors by value: ``Connection.send`` would use torch's
    shared-memory reductions, which need a ``multiprocessing``-spawned peer (its authkey) and leave
    shared segments behind."""
    return pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)


def _prctl(option: int, value: int | bytes) -> None:
    """Linux ``prctl(option, value)`` through libc; nothing elsewhere (the other guards still hold)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


# ====================================================================== the server's side
class WorkerProcess:
    """One forked worker, seen from the server: its pipe, a reader thread and a writer thread.

    :meth:`send` never blocks the caller (a writer thread empties an outbox in order), so a page
    never waits on a worker that is still being forked or busy. The listener (:meth:`listen`) gets
    each message in the reader thread, then :class:`Ended` once the pipe has closed. Holds no
    reference to any handle (the reader thread would keep it alive).
    """

    def __init__(self, conn: Connection, pool: ForkServer) -> None:
        self.conn = conn
        self.pool = pool
        self.pid: int | None = None  # known once the fork server says Forked
        self.returncode: int | None = None
        self.closing = False
        self._exit_known = threading.Event()  # the fork server reported the exit (or cannot)
        self._ended = threading.Event()  # the pipe closed and the exit is known (or was waited for)
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._listener: Callable[[object], None] | None = None
        self._buffer: list[object] = []  # messages received before a listener was set
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="vae-worker-reader", daemon=True)
        self._writer = threading.Thread(target=self._write, name="vae-worker-writer", daemon=True)
        self._reader.start()
        self._writer.start()

    @property
    def alive(self) -> bool:
        """True until the pipe has closed (the worker ended or is ending)."""
        return not self._ended.is_set() and self._reader.is_alive()

    def listen(self, fn: Callable[[object], None]) -> None:
        """Deliver messages to ``fn`` (in the reader thread), those already received first."""
        with self._lock:
            self._listener = fn
            pending, self._buffer = self._buffer, []
        for m in pending:
            fn(m)

    def send(self, msg: object) -> bool:
        """Queue ``msg`` for the worker; False when it is gone. Never blocks, never raises."""
        if self._ended.is_set():
            return False
        self._outbox.put(_dumps(msg))
        return True

    def close(self, wait: bool = True, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Ask the worker to exit; kill it if it has not after ``timeout`` s. Idempotent.

        ``wait=False`` returns at once (a daemon thread finishes the job): for finalizers.
        """
        if not self.closing:
            self.closing = True
            from .messages import Close  # the job protocol's; imported here to keep this module torch-free

            self.send(Close())
            self._outbox.put(None)  # the writer ends after the Close
        if wait:
            self._reap(timeout)
        else:
            threading.Thread(
                target=self._reap, args=(timeout,), name="vae-worker-reaper", daemon=True
            ).start()

    def kill(self) -> None:
        """SIGKILL the worker (a worker that ignores Close; tests)."""
        if self.pid is not None and not self._exit_known.is_set():
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)

    def _reap(self, timeout: float) -> None:
        if not self._ended.wait(timeout):
            self.kill()
            self._ended.wait(timeout)

    # ---------------------------------------------------------------- threads and the pool's reports
    def _deliver(self, msg: object) -> None:
        with self._lock:
            fn = self._listener
            if fn is None:
                self._buffer.append(msg)
                return
        with contextlib.suppress(Exception):  # a bad message must not end the reader
            fn(msg)

    def _read(self) -> None:
        while True:
            try:
                raw = self.conn.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                msg = pickle.loads(raw)
            except Exception:  # an unreadable message: skip it
                continue
            self._deliver(msg)
        self._outbox.put(None)
        # the pipe closed: the worker ended (or is ending); the fork server reaps it and says how
        self._exit_known.wait(EXIT_CODE_WAIT_S)
        with contextlib.suppress(OSError):
            self.conn.close()
        self._ended.set()
        self._deliver(Ended(self.returncode))

    def _write(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self.conn.send_bytes(data)
            except (OSError, ValueError):  # the worker is gone: the reader reports it
                return

    def _forked(self, pid: int) -> None:
        self.pid = pid

    def _exited(self, code: int | None) -> None:
        self.returncode = code
        self._exit_known.set()


class ForkServer:
    """The server's side of the fork server: starts it, asks it for workers, hears of their ends.

    One per server (:func:`default_pool`); :meth:`start` is idempotent and cheap, and :meth:`fork`
    starts the fork server again if it has died. A fork requested while the fork server is still
    importing (the first seconds after the app starts) is served as soon as it is ready.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._rids = itertools.count(1)
        self._pending: dict[int, WorkerProcess] = {}  # rid -> asked for, not yet forked
        self._live: dict[int, WorkerProcess] = {}  # pid -> forked, not yet exited
        self.started_at: float | None = None  # time.monotonic() of the last start
        self.ready_at: float | None = None  # ... and when that fork server had imported everything
        self.core: str | None = None  # the vae_core/__init__.py the fork server imported

    @property
    def pid(self) -> int | None:
        """The fork server's process id (None before :meth:`start`)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        """True while the fork server runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def ready(self) -> bool:
        """True once the running fork server has imported torch and the core."""
        return self.alive and self.ready_at is not None

    def start(self) -> None:
        """Start the fork server unless it runs (returns at once; it imports for 2-4 s meanwhile)."""
        with self._lock:
            if self.alive:
                return
            self._forget_all()
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            root = str(Path(__file__).resolve().parents[1])  # the project root of *this* vae_core
            env = dict(os.environ)
            # the same vae_core as this server, not an installed copy (the venv also has an editable install)
            env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
            self.started_at, self.ready_at, self.core = time.monotonic(), None, None
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "vae_core.forkserver", str(theirs.fileno())],
                cwd=root,
                env=env,
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,  # no pipe of another worker leaks into it: their EOFs stay true
            )
            theirs.close()  # only the fork server holds it now: our death reads as EOF there
            self._sock = mine
            self._reader = threading.Thread(
                target=self._read, args=(mine,), name="vae-forkserver", daemon=True
            )
            self._reader.start()

    def fork(self) -> WorkerProcess:
        """A new worker, forked as soon as the fork server can; returns at once (its pid comes later).

        Messages sent to it meanwhile wait in its pipe. If the fork server dies first, the worker's
        pipe reads EOF and its listener hears :class:`Ended` (code None).
        """
        ours, its = Pipe(duplex=True)
        with self._lock:
            self.start()
            assert self._sock is not None
            rid = next(self._rids)
            wp = WorkerProcess(ours, self)
            self._pending[rid] = wp
            try:
                socket.send_fds(self._sock, [_encode(Fork(rid))], [its.fileno()])
            except OSError:  # the fork server just died: start another and ask it
                self._pending.pop(rid, None)
                self._stop_proc()
                self.start()
                self._pending[rid] = wp
                socket.send_fds(self._sock, [_encode(Fork(rid))], [its.fileno()])
        its.close()  # the fork server has its own copy in flight; the worker will hold the only one
        return wp

    def close(self, timeout: float = 5.0) -> None:
        """End the fork server (its workers end with it). Idempotent; for server exit and tests."""
        with self._lock:
            self._stop_proc(timeout)
            self._forget_all()

    def _stop_proc(self, timeout: float = 5.0) -> None:
        sock, proc = self._sock, self._proc
        self._sock = None
        if sock is not None:
            with contextlib.suppress(OSError):
                # shutdown first: a close() alone would neither wake our reader's recv nor, while that
                # recv holds the socket, tell the fork server anything
                sock.shutdown(socket.SHUT_RDWR)  # EOF: the fork server exits
            sock.close()
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)

    def _forget_all(self) -> None:
        """No word will come on these any more (their fork server is gone): nobody waits for it."""
        for wp in [*self._pending.values(), *self._live.values()]:
            wp._exited(None)
        self._pending.clear()
        self._live.clear()

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            msg = _decode(data)
            with self._lock:
                if isinstance(msg, Ready):
                    if sock is self._sock:
                        self.ready_at, self.core = time.monotonic(), msg.core
                elif isinstance(msg, Forked):
                    wp = self._pending.pop(msg.rid, None)
                    if wp is not None:
                        wp._forked(msg.pid)
                        self._live[msg.pid] = wp
                elif isinstance(msg, Exited):
                    wp = self._live.pop(msg.pid, None)
                    if wp is not None:
                        wp._exited(msg.code)
        with self._lock:
            if sock is self._sock or self._sock is None:
                self._forget_all()


_POOL: ForkServer | None = None
_POOL_LOCK = threading.Lock()


def default_pool() -> ForkServer:
    """The server's one fork server (made on first use, not started: call :meth:`ForkServer.start`)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ForkServer()
            atexit.register(_POOL.close)  # registered after the registry's shutdown: runs after it
        return _POOL


def server_openmp_env() -> None:
    """OpenMP's wait policy for the server's own torch ops: PASSIVE, unless the host set one.

    Call before anything imports torch (app.py's first lines); OpenMP reads it once. The server's ops
    are small (a slider's decode: 144 codes through the decoder) and run while workers hold every
    core: spinning threads, OpenMP's default, then wait for a core and take it from the workers. With
    four workers training, a traversal's decode took 26-100 ms with two spinning threads against
    5-9 ms passive (docs/performance.md).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ====================================================================== the fork server itself
def _set_env() -> None:
    """Settings read once, when a library loads: OpenMP's wait policy and thread counts, and no
    allocator thread (a process with threads must not fork: only the forking thread survives)."""
    # PASSIVE by default: workers share the cores with the server's page reruns (and often with the
    # browser itself), and spinning OpenMP threads starve them; measured in docs/performance.md
    os.environ["OMP_WAIT_POLICY"] = os.environ.get(ENV_WAIT_POLICY, "").strip().upper() or "PASSIVE"
    # a thread's default team size; each worker sets its own share (registry.threads_per_worker)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    # pyarrow (pandas, for scikit-learn's digits) would start jemalloc's background purging thread
    os.environ["JE_ARROW_MALLOC_CONF"] = "background_thread:false"


def _noop() -> None:
    """What ``torch.compiler.disable`` wraps to make torch import its compiler stack."""


class _Gone(Exception):
    """The server closed the fork server's socket."""


def _preload_builtin(ready_to_fork: Callable[[], None]) -> None:
    """Decode each built-in dataset on this machine (numpy only), serving any fork asked for between two."""
    from .data import DATASETS, dataset_available, load_dataset

    for name in DATASETS:
        ready_to_fork()
        with contextlib.suppress(Exception):  # not here, or unreadable: a job on it says why
            if dataset_available(name):
                load_dataset(
                    name
                )  # as a worker calls it: the same cache entry (it downloads nothing: the files are here)


def _reap(sock: socket.socket) -> None:
    """Collect every ended worker and tell the server how it ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with contextlib.suppress(OSError):
            sock.send(_encode(Exited(pid, code)))


def worker_nice() -> int:
    """How many steps (0-19) below the server's CPU priority a worker runs: ``VAE_LAB_WORKER_NICE``, default
    5. On a machine whose cores the workers fill, a page rerun (a slider, a page switch) then gets the CPU
    before a training step; training gets all that the pages leave, so an idle room costs it nothing."""
    raw = os.environ.get(ENV_WORKER_NICE, "").strip()
    return min(19, max(0, int(raw))) if raw else DEFAULT_WORKER_NICE


def _child(fd: int, server_pid: int) -> int:
    """A worker's first moments after the fork: its guards, then the job loop; returns the exit code."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # the fork server gone: so is this worker
    if os.getppid() != server_pid:  # it died before the line above took effect
        return 1
    _prctl(_PR_SET_NAME, WORKER_NAME)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C on the group: end, as the server does
    with contextlib.suppress(OSError, ValueError):  # a bad setting keeps the server's priority
        os.nice(worker_nice())  # when the CPU is short, an attendee's page waits on training no more
    from .worker import serve

    return serve(Connection(fd))


def _fork(sock: socket.socket, rid: int, fd: int) -> None:
    """Fork one worker on pipe end ``fd``; tell the server its pid."""
    gc.freeze()  # every object so far is left alone by the collector: the pages stay shared
    server_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            sock.close()  # only the fork server may hold it (its EOF means: the server is gone)
            code = _child(fd, server_pid)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(fd)
    sock.send(_encode(Forked(rid, pid)))


def _serve_one(sock: socket.socket, timeout: float) -> bool:
    """Wait up to ``timeout`` s for a request and serve it; reap ended workers. False on EOF."""
    readable, _, _ = select.select([sock], [], [], timeout)
    _reap(sock)
    if not readable:
        return True
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
    except OSError:
        return False
    if not data:
        return False
    msg = _decode(data)
    if isinstance(msg, Fork) and fds:
        _fork(sock, msg.rid, fds[0])
    else:
        for fd in fds:
            os.close(fd)
    return True


def serve_forks(sock: socket.socket) -> int:
    """The fork server's life: import, preload, then fork on request until the server is gone."""
    parent = os.getppid()
    import torch

    import vae_core

    from . import worker  # noqa: F401 - the child's loop and all it imports, loaded once for every worker

    torch.compiler.disable(_noop)  # imports torch's compiler stack (the first optimizer would), no tensor op
    sock.send(_encode(Ready(os.getpid(), str(Path(vae_core.__file__).resolve()))))

    def serve_pending() -> None:  # a fork asked for during the preload is served before the next dataset
        while select.select([sock], [], [], 0)[0]:
            if not _serve_one(sock, 0):
                raise _Gone

    try:
        _preload_builtin(serve_pending)
    except _Gone:
        return 0
    while os.getppid() == parent:  # the backstop: the server died and its EOF was missed
        if not _serve_one(sock, POLL_S):
            break
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vae_core.forkserver FD``: serve fork requests on the socket inherited as FD."""
    args = sys.argv[1:] if argv is None else argv
    _set_env()  # before torch (and pyarrow) load, in serve_forks
    _prctl(_PR_SET_NAME, SERVER_NAME)
    sock = socket.socket(fileno=int(args[0]))
    try:
        return serve_forks(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    # run as vae_core.forkserver, not as __main__: one copy of this module in the fork server and its workers
    from vae_core.forkserver import main as _main

    sys.exit(_main())
