"""The verifier's worker processes: math-verify run where a time limit can really stop it.

math-verify's own limit is ``signal.alarm``, which works only in a process's main thread. Each
calling thread gets one persistent worker, forked from a ``forkserver`` that preloaded this
module with math-verify warmed (a restart costs ~50 ms). The worker interrupts a comparison by
SIGALRM at the soft limit; if it still overruns (e.g. inside a GMP call) the caller kills it and
a new one is started lazily. Workers cap their address space so a bignum blow-up fails fast.
Only :mod:`rlboundary.tasks.verify` calls :func:`ask`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading

HARD_GRACE = 0.5  # the worker is killed this long after the timeout
SOFT_LIMIT = True  # also interrupt math-verify by SIGALRM inside the worker (keeps it alive)
WORKER_EXTRA_MEMORY_MB = 4096  # address-space limit of a worker above its size at start
WORKER_START_TIMEOUT = 120.0  # seconds for a new worker to say it is ready
_CANONICAL = "rlboundary.tasks.verify_worker"  # preloaded into the forkserver

_restarts_lock = threading.Lock()
_restarts = 0  # workers replaced after a kill or crash, all threads together


def restart_count() -> int:
    with _restarts_lock:
        return _restarts


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


def _mv_equal(pred: str, gold: str) -> bool:
    from math_verify import verify as mv_verify

    gold_parsed, pred_parsed = _mv_parse(gold), _mv_parse(pred)
    return bool(gold_parsed and pred_parsed
                and mv_verify(gold_parsed, pred_parsed, timeout_seconds=None))


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


_warmed = False


def _warm() -> None:
    """The first comparison of each kind builds parsers and caches (~3 s): do it pre-fork."""
    global _warmed
    _quiet()
    for pred, gold in (("1", "1.0"), ("1+x^2", "x^2+1"), (r"\{2,1\}", r"\{1,2\}"),
                       (r"\frac{\sqrt{2}}{2}", "0.7071"), (r"x \in (0,1]", "(0,1]"),
                       (r"\int_0^1 x\,dx", r"\frac12"), ("4^{4^{4}}", "2^{512}")):
        with contextlib.suppress(Exception):
            _mv_equal(pred, gold)
    _warmed = True


def _worker_main(conn) -> None:
    """Say ("ready", None), then serve (pred, gold, soft limit) -> ("ok", bool) |
    ("timeout", None) | ("error", msg)."""
    if not _warmed:  # spawned rather than forked from the warm forkserver
        _warm()
    _quiet()
    _limit_memory()
    signal.signal(signal.SIGALRM, _on_alarm)
    conn.send(("ready", None))
    while True:
        try:
            pred, gold, soft = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            signal.setitimer(signal.ITIMER_REAL, soft or 0)
            try:
                reply = ("ok", _mv_equal(pred, gold))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _SoftTimeout:
            reply = ("timeout", None)
        except Exception as e:  # noqa: BLE001  (MemoryError too: scored wrong)
            reply = ("error", repr(e)[:200])
        conn.send(reply)


_ctx_lock = threading.Lock()
_ctx: tuple | None = None  # (pid that made it, context)


def _context():
    """A forkserver context with this module preloaded (so warm, cheap workers); spawn where
    there is no forkserver or in a fork of the process that started it (it cannot reach it)."""
    global _ctx
    with _ctx_lock:
        if _ctx is None or _ctx[0] != os.getpid():
            use_fs = _ctx is None and "forkserver" in mp.get_all_start_methods()
            _ctx = (os.getpid(), mp.get_context("forkserver" if use_fs else "spawn"))
            # Add to what others preload (default ['__main__']); no effect once it started.
            with contextlib.suppress(Exception):
                from multiprocessing import forkserver

                cur = list(getattr(forkserver._forkserver, "_preload_modules", []))
                new = [m for m in ("math_verify", _CANONICAL) if m not in cur]
                if use_fs:
                    _ctx[1].set_forkserver_preload(cur + new)
        return _ctx[1]


class VerifierUnavailable(RuntimeError):
    """No worker process could be started: a broken set-up, not a bad answer, so it is raised
    (scoring every answer wrong would silently zero the rewards of a whole run)."""


def _start_worker() -> tuple:
    ctx = _context()
    conn, child = ctx.Pipe()
    proc = ctx.Process(target=_worker_main, args=(child,), daemon=True, name="verifier")
    proc.start()
    child.close()
    try:
        ready = conn.poll(WORKER_START_TIMEOUT) and conn.recv()[0] == "ready"
    except (EOFError, OSError):
        ready = False
    if not ready:
        code = proc.exitcode
        _stop_worker((conn, proc, None))
        main_file = getattr(sys.modules.get("__main__"), "__file__", None)
        hint = ""
        if main_file and not os.path.exists(main_file):
            hint = (f" The calling script {main_file!r} is not a file, and {ctx.get_start_method()}"
                    " workers re-import it: run the code from a .py file or with python -c.")
        raise VerifierUnavailable(
            f"the math-verify worker process did not start (exit code {code}).{hint}")
    return conn, proc, os.getpid()


def _stop_worker(worker: tuple) -> None:
    conn, proc, _ = worker
    with contextlib.suppress(Exception):
        conn.close()
        proc.kill()
        proc.join(2)


def _count_restart() -> None:
    global _restarts
    with _restarts_lock:
        _restarts += 1


# One worker per thread; an idle one exits by itself when its thread (and so its pipe) is gone.
_local = threading.local()


def ask(pred: str, gold: str, timeout: float) -> tuple:
    """One comparison in this thread's worker: the worker's reply, or ("dead"|"crash", msg),
    or ("hard", None) when it overran; a hung or dead worker is killed and later replaced."""
    for _ in range(2):
        if getattr(_local, "worker", None) and _local.worker[2] != os.getpid():
            _local.worker = None  # we are a fork of the worker's owner: leave the worker to it
        if getattr(_local, "worker", None) is None:
            if getattr(_local, "started", False):
                _count_restart()
            _local.worker, _local.started = _start_worker(), True
        conn = _local.worker[0]
        try:
            conn.send((pred, gold, timeout if SOFT_LIMIT else None))
        except (OSError, ValueError) as e:
            reply = ("dead", repr(e))
        else:
            try:
                reply = conn.recv() if conn.poll(timeout + HARD_GRACE) else ("hard", None)
            except (EOFError, OSError) as e:
                reply = ("crash", repr(e))
        if reply[0] in ("ok", "timeout", "error"):
            return reply
        _stop_worker(_local.worker)
        _local.worker = None
        if reply[0] != "dead":  # only a worker found dead before the request gets a retry
            return reply
    return reply


def shutdown() -> None:
    """Stop this thread's worker now (the others stop with their threads or the process)."""
    if getattr(_local, "worker", None) is not None:
        _stop_worker(_local.worker)
        _local.worker = None


# Preloaded into the forkserver (see _context): warm math-verify there, before any fork.
if any("multiprocessing.forkserver import main" in a for a in getattr(sys, "orig_argv", ())):
    _warm()
