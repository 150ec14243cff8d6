"""The verifier's bookkeeping: its verdicts, the counters ``stats()`` reports, and the call to
math-verify in a worker process of the pool with its cache of (answer, gold) verdicts.

Part of :mod:`rlboundary.tasks.verify`, which re-exports :class:`Verdict`, :func:`stats` and
:func:`reset_stats`.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections import OrderedDict

from rlboundary.tasks import verify_worker

log = logging.getLogger("rlboundary.tasks.verify")

CACHE_SIZE = 50_000  # (pred, gold) pairs remembered from the sympy path

_COUNTERS = ("calls", "exact_match", "integer", "exact_number", "several_values", "sympy_calls",
             "cache_hits", "correct", "timeouts", "guarded", "unparseable", "worker_restarts",
             "crashes", "units", "gold_misread")



class Verdict(str, enum.Enum):
    CORRECT = "correct"
    WRONG = "wrong"
    TIMEOUT = "timeout"
    UNPARSEABLE = "unparseable"


_stats_lock = threading.Lock()
_stats = dict.fromkeys(_COUNTERS, 0)
_restart_base = 0  # the workers' restart count at the last reset


def bump(key: str) -> None:
    """Count one event of ``key`` (one of the counters ``stats()`` reports)."""
    with _stats_lock:
        _stats[key] += 1


def stats() -> dict:
    """Counters since the last reset, all threads together. ``exact_match``/``integer``/
    ``exact_number``/``guarded``: decided by that stage (items of several-value answers count
    too); ``sympy_calls``: sent to a worker; ``crashes``: worker failures."""
    with _stats_lock:
        return {**_stats, "worker_restarts": verify_worker.restart_count() - _restart_base}


def reset_stats() -> None:
    global _restart_base
    with _stats_lock:
        _stats.update(dict.fromkeys(_COUNTERS, 0))
        _restart_base = verify_worker.restart_count()


_cache_lock = threading.Lock()
_cache: OrderedDict = OrderedDict()  # (pred, gold) -> (Verdict, timeout it was found with)


def sympy_verdict(pred: str, gold: str, timeout: float) -> tuple[Verdict, str]:
    """(verdict, note) from math-verify in a worker of the pool; the note says why the gold's
    parse could not decide (verify_worker.misread), else ""."""
    with _cache_lock:
        hit = _cache.get((pred, gold))
        if hit is not None and (hit[0] is not Verdict.TIMEOUT or timeout <= hit[1]):
            _cache.move_to_end((pred, gold))
        else:
            hit = None
    if hit is not None:
        bump("cache_hits")
        return hit[0], hit[2]
    bump("sympy_calls")
    kind, detail, *rest = verify_worker.ask(pred, gold, timeout)
    note = rest[0] if rest and rest[0] else ""
    if kind == "ok":
        verdict = Verdict.CORRECT if detail else Verdict.WRONG
    elif kind in ("timeout", "hard"):
        verdict = Verdict.TIMEOUT
    else:
        bump("crashes")
        log.debug("verifier worker failed (%s): %s", kind, detail)
        verdict = Verdict.WRONG
    with _cache_lock:
        _cache[(pred, gold)] = (verdict, timeout, note)
        _cache.move_to_end((pred, gold))
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return verdict, note
