"""What runs inside a math-verify worker process (started by :mod:`.verify_worker` as
``python -c "from rlboundary.tasks.verify_serve import serve; serve()"``): math-verify's
comparison with rlboundary's vetoes, warmed once, stopped by SIGALRM at the caller's soft limit,
under an address-space cap, ending with its parent. Imports only this package and math-verify.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time

WORKER_EXTRA_MEMORY_MB = 4096  # address-space limit of a worker above its size at start


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
