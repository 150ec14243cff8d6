"""Final-answer extraction and equivalence checking, safe to run on untrusted model output.

Why not verl's scorers: its default ``math`` scorers compare normalised strings (``0.5`` vs
``\\frac{1}{2}`` is wrong) and do not know Omni-MATH-Rule; its optional math-verify scorer
abandons timed-out tasks in a process pool without killing them, so hostile answers clog it.
math-verify's own limit is ``signal.alarm``, which works only in the main thread, so in a reward
loop (threads, Ray actors) it runs unbounded and an answer like ``9^{9^{9}}`` stalls training.

:func:`verify` works in stages, cheapest first; :func:`verify_explain` also says which decided:

1. ``string``: normalised strings equal (no sympy); ``integer``: both plain integers.
2. ``several values``: a list, set or tuple on either side (:mod:`.verify_values`). Unordered
   lists of solutions (``1, 2, 3``, ``1 and 2 and 3``, ``\\{1,2\\}``, several ``\\boxed{}`` when the
   gold has several values) match as sets, item by item through these same stages; tuples and
   intervals match in order, brackets included; a bare list may stand for a ``(..)`` tuple (in
   the gold's order) and a ``(..)`` tuple for a list. A single-value gold never matches a list of
   two or more values: no reward for listing every candidate.
3. percent: ``%``, ``\\%``, ``\\text{ percent}`` and ``percent`` are one mark, and optional:
   ``50\\%`` matches ``50`` and ``0.5`` (as math-verify's ``9\\% = 9`` rule and the MATH
   normaliser, which strips ``\\%``); ``0.5\\%`` does not match ``50``.
4. ``guard``: answers that could stall sympy are scored wrong (:mod:`.verify_guard`).
5. ``exact number``: both sides plain numbers (integers, decimals, fractions, powers,
   factorials) are compared as rationals; a decimal matches within one part in a million
   (:mod:`.verify_numbers`). math-verify's absolute tolerance would score ``\\frac{1}{2^{98}}``
   right for ``\\frac{1}{2^{99}}``; here no two numbers a factor of 2 apart ever match.
6. ``math-verify`` in a worker process per calling thread, stopped at the time limit
   (``timeout`` when it is hit), its "equal" vetoed for numbers relatively far apart
   (:mod:`.verify_worker`). Nothing raises but :class:`VerifierUnavailable`; model text is
   never eval'd. Workers are their own interpreters, so any caller works: a script without an
   ``if __name__ == "__main__":`` guard, ``python -`` on stdin, a notebook.

verl: ``reward.custom_reward_function.path=pkg://rlboundary.tasks.verify`` (a file path works
too), ``name=compute_score``. Difference from the study: it scored Omni-MATH-Rule with that
dataset's rule-based answer checks; we use the stages above (math-verify for what is not plain),
which accept some equivalent forms those rules reject, so absolute accuracies differ somewhat.
"""

from __future__ import annotations

import enum
import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

from rlboundary.tasks import verify_numbers, verify_values, verify_worker
from rlboundary.tasks.verify_extract import (
    boxed_answers,
    extract_answer,
    normalize,
    tagged_answer,
    unwrap,
)
from rlboundary.tasks.verify_guard import (  # noqa: F401  (public)
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_EXPONENT,
    MAX_FACTORIAL,
    MAX_LEN,
    risky,
)
from rlboundary.tasks.verify_worker import (  # noqa: F401  (public)
    VerifierUnavailable,
    shutdown,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0  # seconds per math-verify comparison (and per several-value answer)
CACHE_SIZE = 50_000  # (pred, gold) pairs remembered from the sympy path

_COUNTERS = ("calls", "exact_match", "integer", "exact_number", "several_values", "sympy_calls",
             "cache_hits", "correct", "timeouts", "guarded", "unparseable", "worker_restarts",
             "crashes")


class Verdict(str, enum.Enum):
    CORRECT = "correct"
    WRONG = "wrong"
    TIMEOUT = "timeout"
    UNPARSEABLE = "unparseable"


class Explanation(NamedTuple):
    """What :func:`verify_explain` found: the verdict, the stage that decided it ("no answer",
    "string", "integer", "several values", "guard", "exact number", "math-verify", "timeout",
    "error"), the two answers as compared, and a note (e.g. each item's stage). A NamedTuple,
    not a dataclass: verl may load this file as a module missing from ``sys.modules``."""
    verdict: Verdict
    stage: str
    answer: str | None
    gold: str
    detail: str = ""


_stats_lock = threading.Lock()
_stats = dict.fromkeys(_COUNTERS, 0)
_restart_base = 0  # the workers' restart count at the last reset


def _bump(key: str) -> None:
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


@functools.lru_cache(maxsize=4096)
def _lists_values(gold: str) -> bool:
    """Is ``gold`` an unordered list of two or more values?"""
    shape = verify_values.shape(normalize(unwrap(gold)))
    return shape.kind == "set" and len(shape.items) >= 2


def extract_prediction(text: str | None, gold) -> str | None:
    """:func:`extract_answer`; but when the gold is a list of several values, the response has
    no ``<answer>`` tags and it boxes each value apart (``\\boxed{1}, \\boxed{2}``), all its boxes
    together (``1, 2``). An earlier box with another value then makes the answer wrong."""
    pred = extract_answer(text)
    if pred is None or not gold or not _lists_values(str(gold)) or tagged_answer(text) is not None:
        return pred
    boxes = boxed_answers(text)
    return ", ".join(boxes) if len(boxes) >= 2 else pred


_INT = re.compile(r"([+-]?)0*(\d+)")


def _int_key(s: str) -> str:
    sign, digits = _INT.fullmatch(s).groups()
    return "-" + digits if sign == "-" and digits != "0" else digits


# ----------------------------------------------------------------------------- stages
_cache_lock = threading.Lock()
_cache: OrderedDict = OrderedDict()  # (pred, gold) -> (Verdict, timeout it was found with)


def _sympy_verdict(pred: str, gold: str, timeout: float) -> Verdict:
    with _cache_lock:
        hit = _cache.get((pred, gold))
        if hit is not None and (hit[0] is not Verdict.TIMEOUT or timeout <= hit[1]):
            _cache.move_to_end((pred, gold))
        else:
            hit = None
    if hit is not None:
        _bump("cache_hits")
        return hit[0]
    _bump("sympy_calls")
    kind, detail = verify_worker.ask(pred, gold, timeout)
    if kind == "ok":
        verdict = Verdict.CORRECT if detail else Verdict.WRONG
    elif kind in ("timeout", "hard"):
        verdict = Verdict.TIMEOUT
    else:
        _bump("crashes")
        log.debug("verifier worker failed (%s): %s", kind, detail)
        verdict = Verdict.WRONG
    with _cache_lock:
        _cache[(pred, gold)] = (verdict, timeout)
        _cache.move_to_end((pred, gold))
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return verdict


_OK, _NO, _TIMEOUT = Verdict.CORRECT, Verdict.WRONG, Verdict.TIMEOUT
_UNDECIDED = None  # from a cheap pass: only a worker could decide
_SINGLE = "single"  # from _several: let the single-value stages decide


def _decide(pred: str, gold: str, timeout: float, deadline: float | None = None,
            depth: int = 0, cheap: bool = False):
    """(verdict, stage, detail) for two unwrapped answers, or _UNDECIDED when ``cheap`` and only
    a worker could decide. ``deadline`` (time.monotonic()): when items of a several-value answer
    must be done; each math-verify call gets at most ``timeout``."""
    norm_pred = norm_gold = None
    if len(pred) <= 4 * MAX_LEN:  # longer ones cannot pass the guard anyway
        norm_pred, norm_gold = normalize(pred), normalize(gold)
        if norm_pred and norm_pred == norm_gold:
            _bump("exact_match")
            return _OK, "string", ""
        if _INT.fullmatch(norm_pred) and _INT.fullmatch(norm_gold):
            _bump("integer")
            return (_OK if _int_key(norm_pred) == _int_key(norm_gold) else _NO), "integer", ""
        if depth < 2:
            shapes = verify_values.shape(norm_pred), verify_values.shape(norm_gold)
            if shapes[0].kind != "single" or shapes[1].kind != "single":
                decided = _several(*shapes, timeout, deadline, depth, cheap)
                if decided is not _SINGLE:
                    return decided
    pred_body, pred_pct = verify_values.split_percent(pred)
    gold_body, gold_pct = verify_values.split_percent(gold)
    if (pred_pct or gold_pct) and norm_pred is not None:
        norm_pred, norm_gold = normalize(pred_body), normalize(gold_body)
        if norm_pred and norm_pred == norm_gold:
            _bump("exact_match")
            return _OK, "string", "percent mark dropped"
    if risky(pred_body) or risky(gold_body):
        _bump("guarded")
        return _NO, "guard", ""
    if norm_pred is not None:
        exact = verify_numbers.compare(norm_pred, norm_gold, pred_pct, gold_pct)
        if exact is not None:
            _bump("exact_number")
            return (_OK if exact else _NO), "exact number", ""
    if cheap:
        return _UNDECIDED
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            return _TIMEOUT, "timeout", "no time left for math-verify"
    verdict = _sympy_verdict(pred_body, gold_body, timeout)
    return verdict, ("timeout" if verdict is _TIMEOUT else "math-verify"), ""


def _several(pred: verify_values.Shape, gold: verify_values.Shape, timeout: float,
             deadline: float | None, depth: int, cheap: bool):
    """Compare answers of which at least one has several values (rules: module docstring), each
    pair of items through :func:`_decide`, cheap stages first; _SINGLE where the single-value
    stages should decide (a tuple or set against one expression). The items' math-verify calls
    share one ``timeout`` (from ``deadline``, else from when the first one starts)."""
    def verdict(v: Verdict, note: str):
        _bump("several_values")
        return v, "several values", note

    if len(pred.items) > verify_values.MAX_VALUES or len(gold.items) > verify_values.MAX_VALUES:
        _bump("guarded")
        return _NO, "guard", f"more than {verify_values.MAX_VALUES} values"
    if gold.kind == "single":
        if pred.kind == "set" and len(set(pred.items)) >= 2:
            return verdict(_NO, f"one value expected, the answer lists {len(pred.items)}")
        return _SINGLE
    if pred.kind == "single":
        if len(set(gold.items)) >= 2 and verify_numbers.plain_number(pred.items[0]) is not None:
            return verdict(_NO, f"{len(set(gold.items))} values expected, the answer has one")
        return _SINGLE
    ordered = gold.kind == "tuple"
    if ordered and not (pred.brackets == gold.brackets
                        or (pred.brackets == "" and gold.brackets == "()")):
        return verdict(_NO, f"brackets {pred.brackets or 'none'} against {gold.brackets}")
    if not ordered and pred.kind == "tuple" and pred.brackets != "()":
        return verdict(_NO, f"an interval {pred.brackets} against a set")
    p_items, g_items = pred.items, gold.items
    if not ordered:  # repeats in a set say nothing
        p_items, g_items = tuple(dict.fromkeys(p_items)), tuple(dict.fromkeys(g_items))
    kind, n = ("tuple" if ordered else "set"), len(g_items)
    if len(p_items) != n:
        return verdict(_NO, f"{len(p_items)} values, {n} expected")
    matched: dict[int, str] = {}  # gold item -> the stage that matched it
    used: set[int] = set()
    for cheap_pass in ((True,) if cheap else (True, False)):
        if not cheap_pass and deadline is None:
            verify_worker.ensure_worker()  # its start-up is not the items' time
            deadline = time.monotonic() + timeout
        for j in range(n):
            if j in matched:
                continue
            undecided = timed_out = False
            for i in ([j] if ordered else range(n)):
                if i in used:
                    continue
                got = _decide(p_items[i], g_items[j], timeout, deadline, depth + 1, cheap_pass)
                if got is _UNDECIDED:
                    undecided = True
                    continue
                if got[0] is _OK:
                    matched[j] = got[1]
                    used.add(i)
                    break
                timed_out = timed_out or got[0] is _TIMEOUT
            else:
                if not undecided:  # no item can match this one
                    note = f"{kind} item {j + 1} ({g_items[j]}) unmatched"
                    if timed_out:
                        return verdict(_TIMEOUT, note + ": math-verify ran out of time")
                    return verdict(_NO, note)
    if len(matched) < n:
        return _UNDECIDED
    stages = ", ".join(dict.fromkeys(matched[j] for j in range(n)))
    return verdict(_OK, f"{kind} of {n} values ({stages})")


# ----------------------------------------------------------------------------- public API
def _explain(pred, gold, timeout: float | None) -> tuple:
    """The fields of an :class:`Explanation`."""
    if pred is None or not str(pred).strip():
        return Verdict.UNPARSEABLE, "no answer", None, "" if gold is None else str(gold), ""
    pred, gold = unwrap(str(pred)), unwrap("" if gold is None else str(gold))
    if not gold:
        return _NO, "no gold", pred, gold, ""
    verdict, stage, detail = _decide(pred, gold, DEFAULT_TIMEOUT if timeout is None
                                     else float(timeout))
    return verdict, stage, pred, gold, detail


def _run(pred, gold, timeout: float | None) -> tuple:
    _bump("calls")
    try:
        out = _explain(pred, gold, timeout)
    except VerifierUnavailable:
        raise
    except Exception as e:
        log.warning("answer verification failed; scored wrong", exc_info=True)
        _bump("crashes")
        out = (_NO, "error", pred, "" if gold is None else str(gold), repr(e)[:200])
    counter = _VERDICT_COUNTER.get(out[0])
    if counter:
        _bump(counter)
    return out


_VERDICT_COUNTER = {Verdict.CORRECT: "correct", Verdict.TIMEOUT: "timeouts",
                    Verdict.UNPARSEABLE: "unparseable"}


def verify_explain(pred: str | None, gold: str, timeout: float | None = None) -> Explanation:
    """:func:`verify`, with the stage that decided and a note (for ``rlboundary verify``)."""
    return Explanation(*_run(pred, gold, timeout))


def verify(pred: str | None, gold: str, timeout: float | None = None) -> Verdict:
    """Is the extracted answer ``pred`` equivalent to ``gold``?

    No answer makes it raise; only :class:`VerifierUnavailable` (no worker process can be
    started at all) does, since that is a broken set-up that would score everything wrong.
    """
    return _run(pred, gold, timeout)[0]


def is_equivalent(pred: str | None, gold: str, timeout: float | None = None) -> bool:
    return verify(pred, gold, timeout) is Verdict.CORRECT


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """verl ``custom_reward_function`` entry point; ``ground_truth`` may be a list (any match).

    ``timeout`` may come in ``reward_kwargs``; other keyword arguments are ignored.
    """
    many = isinstance(ground_truth, (list, tuple)) or type(ground_truth).__name__ == "ndarray"
    verdicts, pred = [], None
    for gold in list(ground_truth) if many else [ground_truth]:
        pred = extract_prediction(solution_str, gold)
        verdicts.append(verify(pred, gold, kwargs.get("timeout")))
        if verdicts[-1] is Verdict.CORRECT:
            break
    acc = bool(verdicts) and verdicts[-1] is Verdict.CORRECT
    return {"score": 1.0 if acc else 0.0, "acc": acc, "pred": pred or "",
            "timeout": not acc and Verdict.TIMEOUT in verdicts}


def answer_key(pred: str | None) -> str | None:
    """The class of an extracted answer for counting distinct answers (probes/diversity.py):
    the verifier's normalised string, or ``#<fraction>`` for a plain number (so "0.5", "1/2"
    and "\\frac{1}{2}" are one answer); None for no answer. Cheap: no sympy, no worker."""
    if not pred:
        return None
    s = normalize(pred)
    if not s:
        return None
    number = verify_numbers.plain_number(s)
    return f"#{number[0]}" if number is not None else s

