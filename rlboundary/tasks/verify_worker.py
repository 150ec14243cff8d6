"""The verifier's worker processes: math-verify run where a time limit can really stop it.

math-verify's own limit is ``signal.alarm``, which works only in a process's main thread. A
process keeps one pool of persistent workers shared by its threads, at most
:func:`max_workers` (``verify.max_workers``; default: the usable cores), each lent to one call
at a time while further calls queue (verl's reward loop calls from up to 32 threads per reward
worker; a worker per thread would be that many ~69 MiB interpreters). A worker is a fresh
interpreter running :mod:`.verify_serve` (``python -c "from rlboundary.tasks.verify_serve
import serve; serve()"``), talking JSON lines over its stdin/stdout. It imports and warms math-verify once (~2 s), interrupts a comparison by SIGALRM
at the soft limit, and caps its address space so that a bignum blow-up fails fast; if a
comparison still overruns (e.g. inside one GMP call) the caller kills the worker and puts its
replacement in the pool at once, waited for only when next taken.

Why not :mod:`multiprocessing`: its ``spawn`` and ``forkserver`` children re-import the caller's
``__main__``, so a script without an ``if __name__ == "__main__":`` guard (or one fed on stdin)
could not start a worker; ``fork`` is unsafe in threaded callers. A worker here imports only
this package and math-verify. It runs with the caller's interpreter and ``os.environ``, with the
folder holding this package first on ``PYTHONPATH``. POSIX only (``poll`` on pipes).
Only :mod:`rlboundary.tasks.verify` calls :func:`ask`.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time

HARD_GRACE = 0.5  # the worker is killed this long after the timeout
SOFT_LIMIT = True  # also interrupt math-verify by SIGALRM inside the worker (keeps it alive)
WORKER_START_TIMEOUT = 120.0  # seconds for a new worker to say it is ready
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_COMMAND = "from rlboundary.tasks.verify_serve import serve; serve()"

_restarts_lock = threading.Lock()
_restarts = 0  # workers replaced after a kill or crash, all threads together
_start_seconds: list[float] = []  # how long each worker took to become ready (last 100)


def restart_count() -> int:
    with _restarts_lock:
        return _restarts


def start_times() -> list[float]:
    """Seconds from launch to ready of the workers this process started (the last 100)."""
    with _restarts_lock:
        return list(_start_seconds)


class VerifierUnavailable(RuntimeError):
    """No worker process could be started: a broken set-up, not a bad answer, so it is raised
    (scoring every answer wrong would silently zero the rewards of a whole run)."""


# ============================================================================ in the caller
class _Worker:
    """One worker process: launched at once, waited for (:meth:`wait_ready`) when first used."""

    def __init__(self) -> None:
        exe = sys.executable
        if not exe:
            raise VerifierUnavailable("sys.executable is empty: there is no Python interpreter "
                                      "to run a math-verify worker with")
        env = dict(os.environ, RLBOUNDARY_VERIFY_PARENT=str(os.getpid()),
                   PYTHONPATH=os.pathsep.join([_ROOT] + [p for p in [os.environ.get(
                       "PYTHONPATH")] if p]))
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (closed once it is ready)
        self.t0 = time.perf_counter()
        try:
            self.proc = subprocess.Popen([exe, "-c", _COMMAND], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.log, cwd=_ROOT,
                                         env=env, close_fds=True)
        except OSError as e:
            self.log.close()
            raise VerifierUnavailable(f"could not run {exe!r} for a math-verify worker: {e}") \
                from e
        self.owner, self.buf, self.ready, self.prelaunched = os.getpid(), b"", False, False
        self.poller = None

    def wait_ready(self) -> None:
        try:
            reply = self.recv(WORKER_START_TIMEOUT)
        except (EOFError, OSError, ValueError):
            reply = None
        if not reply or reply[0] != "ready":
            self.stop()
            tail = ""
            with contextlib.suppress(OSError, ValueError):
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace").strip()[-1500:]
            self.log.close()
            code = self.proc.returncode
            what = (f"did not become ready within {WORKER_START_TIMEOUT:.0f} s" if code is None
                    else f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
            raise VerifierUnavailable(
                f"the math-verify worker process ({sys.executable} -c {_COMMAND!r}, in "
                f"{_ROOT}) {what}" + (f"; it wrote:\n{tail}" if tail else "; it wrote nothing"))
        self.ready = True
        self.log.close()
        with _restarts_lock:
            _start_seconds[:] = _start_seconds[-99:] + [time.perf_counter() - self.t0]

    def send(self, message: list) -> None:
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def recv(self, timeout: float) -> list | None:
        """The next reply, or None when none came within ``timeout``; EOFError if it died."""
        deadline, fd = time.monotonic() + timeout, self.proc.stdout.fileno()
        if self.poller is None:  # poll, not select: callers may hold more than 1024 files
            self.poller = select.poll()
            self.poller.register(fd, select.POLLIN)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.poller.poll(max(1, int(left * 1000))):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("the worker closed its output")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(2)
        for f in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                f.close()

    def __del__(self) -> None:  # its thread is gone: so is the worker
        with contextlib.suppress(Exception):
            if self.owner == os.getpid():
                self.stop()


def _count_restart() -> None:
    global _restarts
    with _restarts_lock:
        _restarts += 1


#: Environment variable capping this process's worker pool (a whole number; default: the
#: cores this process may use). ``rlboundary`` sets it from ``verify.max_workers``, for verl's
#: reward workers through the job's runtime_env.
MAX_WORKERS_ENV = "RLBOUNDARY_VERIFY_WORKERS"


def max_workers() -> int:
    """The pool's cap: ``$RLBOUNDARY_VERIFY_WORKERS`` when set to a whole number >= 1, else
    the cores this process may use (its CPU affinity)."""
    raw = os.environ.get(MAX_WORKERS_ENV, "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


class _Pool:
    """This process's workers, shared by its threads: at most :func:`max_workers`, each
    lent to one call at a time; a call finding them all busy waits its turn (the wait is not
    part of its time limit). Workers are launched from one long-lived thread of the pool, so
    Linux's PDEATHSIG (tied to the launching thread) ends them with the process, not with the
    caller thread that happened to need one first."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.cond = threading.Condition()
        self.idle: list[_Worker] = []
        self.alive = 0      # workers launched and not yet stopped (idle or lent)
        self.queue: collections.deque = collections.deque()  # callers waiting, in order
        self.launcher = None

    def launch(self) -> _Worker:
        from concurrent.futures import ThreadPoolExecutor

        with self.cond:
            if self.launcher is None:
                self.launcher = ThreadPoolExecutor(1, thread_name_prefix="verify-launch")
        return self.launcher.submit(_Worker).result()

    def take(self) -> _Worker:
        """An idle worker, a new one while under the cap, else the next one returned. Callers
        are served in the order they asked (a thread that gives a worker back and asks again
        queues behind those already waiting)."""
        with self.cond:
            me = object()
            self.queue.append(me)
            try:
                while self.queue[0] is not me or (not self.idle
                                                  and self.alive >= max_workers()):
                    self.cond.wait()
            finally:  # served, or interrupted while waiting: out of the line either way
                self.queue.remove(me)
                self.cond.notify_all()  # the next in line checks again
            if self.idle:
                return self.idle.pop()
            self.alive += 1
        try:
            return self.launch()
        except BaseException:
            self.forget()
            raise

    def give_back(self, worker: _Worker) -> None:
        with self.cond:
            self.idle.append(worker)
            self.cond.notify_all()

    def forget(self) -> None:
        """One lent worker is gone (stopped, or never started)."""
        with self.cond:
            self.alive -= 1
            self.cond.notify_all()

    def stop_idle(self) -> None:
        with self.cond:
            idle, self.idle = self.idle, []
            self.alive -= len(idle)
            self.cond.notify_all()
        for worker in idle:
            worker.stop()


_pool_lock = threading.Lock()
_the_pool: _Pool | None = None


def _pool() -> _Pool:
    """This process's pool (a fork starts its own: its parent's workers stay the parent's)."""
    global _the_pool
    with _pool_lock:
        if _the_pool is None or _the_pool.pid != os.getpid():
            _the_pool = _Pool()
        return _the_pool


def _after_fork_in_child() -> None:
    """A fork copies locks held by other threads: the child starts with fresh ones."""
    global _pool_lock, _the_pool
    _pool_lock, _the_pool = threading.Lock(), None
    _held.worker = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _ready(pool: _Pool, worker: _Worker) -> _Worker:
    """``worker`` once it has said it is ready; a prelaunched replacement that died before it
    was needed gets one more try. On any failure (``VerifierUnavailable``, Ctrl-C) the worker
    is stopped and its slot given up before the exception goes on."""
    try:
        if worker.ready:
            return worker
        try:
            worker.wait_ready()
            return worker
        except VerifierUnavailable:
            if not worker.prelaunched:
                raise
        worker = pool.launch()
        worker.wait_ready()
        return worker
    except BaseException:
        worker.stop()
        pool.forget()
        raise


def _replace(pool: _Pool, worker: _Worker) -> None:
    """Kill a lent worker that overran or died and put its replacement in the pool at once
    (launched now, waited for when next taken)."""
    worker.stop()
    _count_restart()
    try:
        replacement = pool.launch()
    except VerifierUnavailable:  # the next call launches (and may raise) again
        pool.forget()
        return
    except BaseException:
        pool.forget()
        raise
    replacement.prelaunched = True
    pool.give_back(replacement)


def prelaunch() -> None:
    """Launch a worker now without waiting for it, when the pool has none, so that its
    start-up (~2 s, another core's work) overlaps the caller's (e.g. a probe's first
    sampling)."""
    pool = _pool()
    with pool.cond:
        if pool.alive:
            return
        pool.alive += 1
    try:
        worker = pool.launch()
    except VerifierUnavailable:  # a warm-up only: the first real call raises it
        pool.forget()
        return
    except BaseException:
        pool.forget()
        raise
    worker.prelaunched = True
    pool.give_back(worker)


_held = threading.local()  # a worker this thread keeps across calls (:func:`holding`)


@contextlib.contextmanager
def holding():
    """Keep one ready worker for this thread while the block runs (a several-value answer's
    items share one time limit: none of it may go to waiting for a free worker); it goes back
    to the pool afterwards. Raises :class:`VerifierUnavailable` as :func:`ask`."""
    if getattr(_held, "worker", None) is not None:  # already holding: nest freely
        yield
        return
    _held.worker = _ready(pool := _pool(), pool.take())
    try:
        yield
    finally:
        worker, _held.worker = _held.worker, None
        if worker is not None:
            pool.give_back(worker)


def ensure_worker() -> None:
    """Have one worker ready now, so that its start-up (~2 s) is not charged to the time limit
    of the comparisons that follow; raises :class:`VerifierUnavailable` as :func:`ask`."""
    pool = _pool()
    pool.give_back(_ready(pool, pool.take()))


def worker_pids() -> list[int]:
    """Process ids of the pool's idle workers (for tests and diagnostics)."""
    with _pool().cond:
        return [w.proc.pid for w in _pool().idle]


def _exchange(worker: _Worker, pred: str, gold: str, timeout: float) -> list:
    try:
        worker.send([pred, gold, timeout if SOFT_LIMIT else None])
    except (OSError, ValueError) as e:
        return ["dead", repr(e)]
    try:
        return worker.recv(timeout + HARD_GRACE) or ["hard", None]
    except (EOFError, OSError, ValueError) as e:
        return ["crash", repr(e)]


def ask(pred: str, gold: str, timeout: float) -> tuple:
    """One comparison in a worker of the pool (this thread's held one inside
    :func:`holding`): the worker's reply, or ("dead"|"crash", msg), or ("hard", None) when it
    overran; a hung or dead worker is killed and replaced. The time limit starts once a worker
    is ready and this call holds it; an interrupted call stops its worker and frees its slot."""
    reply: list = ["dead", None]
    pool = _pool()
    for _ in range(2):
        held = getattr(_held, "worker", None)
        worker = held if held is not None else _ready(pool, pool.take())
        try:
            reply = _exchange(worker, pred, gold, timeout)
        except BaseException:
            _held.worker = None
            worker.stop()
            pool.forget()
            raise
        if reply[0] in ("ok", "timeout", "error"):
            if held is None:
                pool.give_back(worker)
            return tuple(reply)
        if held is not None:  # the held worker is gone: its replacement is held instead
            _held.worker = None
            _replace(pool, worker)
            _held.worker = _ready(pool, pool.take())
        else:
            _replace(pool, worker)
        if reply[0] != "dead":  # only a worker found dead before the request gets a retry
            return tuple(reply)
    return tuple(reply)


def shutdown() -> None:
    """Stop the pool's idle workers now (lent ones stop when given back to a later
    shutdown, or with the process)."""
    _pool().stop_idle()
