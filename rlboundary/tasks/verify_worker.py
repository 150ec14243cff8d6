"""The verifier's worker processes: math-verify run where a time limit can really stop it.

math-verify's own limit is ``signal.alarm``, which works only in a process's main thread. Each
calling thread gets one persistent worker: a fresh interpreter running :func:`serve` from this
module (``python -c "from rlboundary.tasks.verify_worker import serve; serve()"``), talking
JSON lines over its stdin/stdout. It imports and warms math-verify once (~2 s), interrupts a
comparison by SIGALRM at the soft limit, and caps its address space so that a bignum blow-up
fails fast; if a comparison still overruns (e.g. inside one GMP call) the caller kills the worker
and starts its replacement at once, waiting for it only when that thread next needs it.

Why not :mod:`multiprocessing`: its ``spawn`` and ``forkserver`` children re-import the caller's
``__main__``, so a script without an ``if __name__ == "__main__":`` guard (or one fed on stdin)
could not start a worker; ``fork`` is unsafe in threaded callers. A worker here imports only
this package and math-verify. It runs with the caller's interpreter and ``os.environ``, with the
folder holding this package first on ``PYTHONPATH``. POSIX only (``poll`` on pipes).
Only :mod:`rlboundary.tasks.verify` calls :func:`ask`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

HARD_GRACE = 0.5  # the worker is killed this long after the timeout
SOFT_LIMIT = True  # also interrupt math-verify by SIGALRM inside the worker (keeps it alive)
WORKER_EXTRA_MEMORY_MB = 4096  # address-space limit of a worker above its size at start
WORKER_START_TIMEOUT = 120.0  # seconds for a new worker to say it is ready
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_COMMAND = "from rlboundary.tasks.verify_worker import serve; serve()"

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


# ============================================================================ in the worker
class _SoftTimeout(BaseException):
    """Raised by SIGALRM in the worker; a BaseException so that math-verify cannot catch it."""


def _on_alarm(signum, frame):
    raise _SoftTimeout()


def _mv_parse(s: str) -> list:
    from math_verify import parse

    delimited = any(d in s for d in ("\\boxed", "$", "\\(", "\\["))
    for candidate in [s] if delimited else ["\\boxed{" + s + "}", "$" + s + "$", s]:
        parsed = parse(candidate, parsing_timeout=None)
        if parsed:
            return parsed
    return []


def _relatively_far(gold, pred) -> bool:
    """Both are plain sympy numbers more than ``REL_TOL`` apart, relative to the larger: the
    veto on math-verify's absolute tolerance (``chop``, 6 decimal places) for numbers that
    :mod:`rlboundary.tasks.verify_numbers` cannot read exactly (``\\pi/2^{100}``)."""
    from sympy import Eq, Expr, Symbol, UnevaluatedExpr

    from rlboundary.tasks.verify_numbers import REL_TOL

    try:
        # x = 2^{-98} against 2^{-99}: math-verify compares the right-hand side
        gold, pred = ((e.rhs if isinstance(e, Eq) and isinstance(e.lhs, Symbol) else e)
                      for e in (gold, pred))
        if not (isinstance(gold, Expr) and isinstance(pred, Expr) and gold.is_number
                and pred.is_number) or gold.has(UnevaluatedExpr) or pred.has(UnevaluatedExpr):
            return False
        a, b = gold.evalf(30), pred.evalf(30)
        diff, scale = abs(a - b), max(abs(a), abs(b))
        if not (diff.is_finite and scale.is_finite):
            return False
        return bool(diff > scale * float(REL_TOL) * (1 + 1e-12))
    except Exception:  # noqa: BLE001  (not comparable: math-verify's verdict stands)
        return False


def _mv_equal(pred: str, gold: str) -> tuple[bool, str]:
    """(math-verify says equal and no veto applies, a note on the gold when its parse lost what
    it says: such a parse never decides "correct")."""
    from math_verify import verify as mv_verify

    from rlboundary.tasks.verify_gold import free_symbols, misread

    gold_parsed, pred_parsed = _mv_parse(gold), _mv_parse(pred)
    if not (gold_parsed and pred_parsed):
        return False, ""
    lost = misread(gold, gold_parsed)
    if lost:
        return False, lost
    if not mv_verify(gold_parsed, pred_parsed, timeout_seconds=None):
        return False, ""
    free_gold, free_pred = free_symbols(gold_parsed[0]), free_symbols(pred_parsed[0])
    if free_gold is not None and free_pred is not None and free_gold != free_pred:
        return False, ""  # no identity holds between expressions in different variables
    return not _relatively_far(gold_parsed[0], pred_parsed[0]), ""


def _quiet() -> None:
    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _limit_memory() -> None:
    """Cap the worker's address space, so that a bignum blow-up fails instead of swapping."""
    with contextlib.suppress(OSError, ValueError, ImportError):  # not Linux: no limit
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = size + WORKER_EXTRA_MEMORY_MB * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the thread that started it ends (or its process dies)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != int(os.environ.get("RLBOUNDARY_VERIFY_PARENT", os.getppid())):
            os._exit(0)  # the parent died before prctl


def _warm() -> None:
    """The first comparison of each kind builds parsers and caches (~2 s): do it at start."""
    _quiet()
    for pred, gold in (("1", "1.0"), ("1+x^2", "x^2+1"), (r"\{2,1\}", r"\{1,2\}"),
                       (r"\frac{\sqrt{2}}{2}", "0.7071"), (r"x \in (0,1]", "(0,1]"),
                       (r"\int_0^1 x\,dx", r"\frac12"), ("4^{4^{4}}", "2^{512}")):
        with contextlib.suppress(Exception):
            _mv_equal(pred, gold)


def serve() -> None:
    """The worker: say ["ready", seconds], then answer each [pred, gold, soft limit] line with
    ["ok", bool, note] | ["timeout", null] | ["error", message], until stdin closes (``note``:
    why the gold's parse could not decide, else "")."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle
    _die_with_parent()
    t0 = time.perf_counter()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # stray prints must not corrupt the replies
    _warm()
    _limit_memory()
    signal.signal(signal.SIGALRM, _on_alarm)
    out.write(json.dumps(["ready", time.perf_counter() - t0]).encode() + b"\n")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)  # the start-up log has been read; keep it from growing
    for line in sys.stdin.buffer:
        try:
            pred, gold, soft = json.loads(line)
            signal.setitimer(signal.ITIMER_REAL, soft or 0)
            try:
                reply = ["ok", *_mv_equal(pred, gold)]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            reply = ["timeout", None]
        except Exception as e:  # noqa: BLE001  (MemoryError too: scored wrong)
            reply = ["error", repr(e)[:200]]
        try:
            out.write(json.dumps(reply).encode() + b"\n")
        except OSError:
            return


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


# One worker per thread; it ends with its thread (the pipe closes, and on Linux PDEATHSIG).
_local = threading.local()


def _replace_worker() -> None:
    """Kill this thread's worker and launch its replacement now (waited for when next used)."""
    _local.worker.stop()
    _local.worker = None  # if the launch fails, the next call tries again (and may raise)
    with contextlib.suppress(VerifierUnavailable):
        _local.worker = _Worker()
        _local.worker.prelaunched = True
        _count_restart()


def _ready_worker() -> _Worker:
    """This thread's worker, started (or waited for) now if need be."""
    worker = getattr(_local, "worker", None)
    if worker is not None and worker.owner != os.getpid():
        worker = None  # we are a fork of the worker's owner: leave the worker to it
    if worker is None:
        if getattr(_local, "started", False):
            _count_restart()
        worker = _local.worker = _Worker()
        _local.started = True
    if not worker.ready:
        _local.worker = None
        try:
            worker.wait_ready()
        except VerifierUnavailable:
            if not worker.prelaunched:
                raise
            worker = _Worker()  # a replacement died before it was needed: one more try
            worker.wait_ready()
        _local.worker = worker
    return worker


def prelaunch() -> None:
    """Launch this thread's worker now without waiting for it, so that its start-up (~2 s,
    another core's work) overlaps the caller's (e.g. a probe's first sampling)."""
    worker = getattr(_local, "worker", None)
    if worker is None or worker.owner != os.getpid():
        with contextlib.suppress(VerifierUnavailable):
            _local.worker = _Worker()
            _local.worker.prelaunched = True
            _local.started = True


def ensure_worker() -> None:
    """Start this thread's worker now, so that its start-up (~2 s) is not charged to the time
    limit of the comparisons that follow; raises :class:`VerifierUnavailable` as :func:`ask`."""
    _ready_worker()


def ask(pred: str, gold: str, timeout: float) -> tuple:
    """One comparison in this thread's worker: the worker's reply, or ("dead"|"crash", msg),
    or ("hard", None) when it overran; a hung or dead worker is killed and replaced. The time
    limit starts once the worker is ready."""
    reply: list = ["dead", None]
    for _ in range(2):
        worker = _ready_worker()
        try:
            worker.send([pred, gold, timeout if SOFT_LIMIT else None])
        except (OSError, ValueError) as e:
            reply = ["dead", repr(e)]
        else:
            try:
                reply = worker.recv(timeout + HARD_GRACE) or ["hard", None]
            except (EOFError, OSError, ValueError) as e:
                reply = ["crash", repr(e)]
        if reply[0] in ("ok", "timeout", "error"):
            return tuple(reply)
        _replace_worker()
        if reply[0] != "dead":  # only a worker found dead before the request gets a retry
            return tuple(reply)
    return tuple(reply)


def shutdown() -> None:
    """Stop this thread's worker now (the others stop with their threads or the process)."""
    if getattr(_local, "worker", None) is not None:
        _local.worker.stop()
        _local.worker = None


if __name__ == "__main__":
    serve()
