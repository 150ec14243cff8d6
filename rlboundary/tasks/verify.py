"""Final-answer extraction and equivalence checking, safe to run on untrusted model output.

Why not verl's scorers: its default ``math`` scorers compare normalised strings (``0.5`` vs
``\\frac{1}{2}`` is wrong) and do not know Omni-MATH-Rule; its optional math-verify scorer
abandons timed-out tasks in a process pool without killing them, so hostile answers clog it.
math-verify's own limit is ``signal.alarm``, which works only in the main thread, so in a reward
loop (threads, Ray actors) it runs unbounded and an answer like ``9^{9^{9}}`` stalls training.

:func:`verify` works in stages, cheapest first; :func:`verify_explain` also says which decided:

1. ``string``: normalised strings equal (no sympy; brace-less ``\\dfrac n 2`` is read as
   ``\\frac{n}{2}``, ``1 000`` as 1000); ``integer``: both plain integers.
2. ``several values``: a list, set or tuple on either side (:mod:`.verify_values`). Inside a
   bracket pair a top-level comma always separates items: ``(5,120)`` is ``(5, 120)``, never the
   number 5120, and ``(0,120)`` is never 120. An inequality in one variable against an interval
   is read as the interval it describes (``0<x<1`` is ``(0,1)``, ``x \\ge 3`` is
   ``[3,\\infty)``). Unordered
   lists of solutions (``1, 2, 3``, ``1 and 2 and 3``, ``\\{1,2\\}``, several ``\\boxed{}`` when the
   gold has several values) match as sets, item by item through these same stages; tuples and
   intervals match in order, brackets included; a bare list may stand for a ``(..)`` tuple (in
   the gold's order) and a ``(..)`` tuple for a list. A single-value gold never matches a list of
   two or more values: no reward for listing every candidate.
3. percent: ``%``, ``\\%``, ``\\text{ percent}`` and ``percent`` are one mark, and optional:
   ``50\\%`` matches ``50`` and ``0.5`` (as math-verify's ``9\\% = 9`` rule and the MATH
   normaliser, which strips ``\\%``); ``0.5\\%`` does not match ``50``.
4. ``units``: a unit written as text after a value (``5 \\text{ cm}``) is compared as written,
   spaces aside: ``5 \\text{ m}`` against ``5 \\text{ cm}`` is wrong (math-verify drops units and
   would say equal); a bare value matches a gold with a unit (the question names the unit), and
   the values decide through these same stages. ``centimeters`` against ``cm`` is wrong too: no
   unit table. ``guard``: answers that could stall sympy are scored wrong
   (:mod:`.verify_guard`).
5. ``exact number``: both sides plain numbers (integers, decimals, fractions, powers,
   factorials) are compared as rationals; a decimal matches within one part in a million
   (:mod:`.verify_numbers`), or when it is the other number rounded to its own places with 4
   or more significant digits (``2.6667`` for ``\\frac83``). math-verify's absolute tolerance
   would score ``\\frac{1}{2^{98}}`` right for ``\\frac{1}{2^{99}}``; here no two numbers a factor
   of 2 apart ever match. Scientific notation ``4.8e8`` is ``4.8 \\times 10^{8}`` (a decimal, ``e``,
   an integer); a decimal comma (``1,22``, ``0,111``) is read as a decimal point against a
   decimal gold when it cannot be a thousands separator. Degrees are compared in degrees:
   ``30^{\\circ}`` is 30, and ``\\frac{\\pi}{6}`` against it is wrong (the question asks for one
   unit; no conversion).
6. ``math-verify`` in a worker process of the process's pool (:mod:`.verify_worker`, shared
   by threads, ``verify.max_workers``), stopped at the time limit (``timeout`` when it is
   hit), its "equal" vetoed for numbers relatively far apart (:mod:`.verify_serve`), and for expressions in different variables (``2`` against
   ``\\frac{n^2}{4}+\\frac{n}{2}``). ``gold misread``: when math-verify's parse of the gold lost
   what it says (a plain number for a gold that writes variables, relations, set braces or a
   number in another base, ``11111001110_8``), that parse decides nothing: wrong, counted
   apart (``stats()["gold_misread"]``); only the stages above can reward such a gold.
   Nothing raises but :class:`VerifierUnavailable`; model text is
   never eval'd. Workers are their own interpreters, so any caller works: a script without an
   ``if __name__ == "__main__":`` guard, ``python -`` on stdin, a notebook.

verl: ``reward.custom_reward_function.path=pkg://rlboundary.tasks.verify`` (a file path works
too), ``name=compute_score``. Difference from the study: it scored Omni-MATH-Rule with that
dataset's rule-based answer checks; we use the stages above (math-verify for what is not plain),
which accept some equivalent forms those rules reject, so absolute accuracies differ somewhat.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from typing import NamedTuple

from rlboundary.tasks import verify_numbers, verify_values, verify_worker
from rlboundary.tasks.verify_calls import (  # noqa: F401  (public)
    Verdict,
    bump,
    reset_stats,
    stats,
    sympy_verdict,
)
from rlboundary.tasks.verify_extract import (
    boxed_answers,
    brace_fracs,
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
from rlboundary.tasks.verify_keys import answer_key  # noqa: F401  (public)
from rlboundary.tasks.verify_worker import (  # noqa: F401  (public)
    VerifierUnavailable,
    shutdown,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0  # seconds per math-verify comparison (and per several-value answer)

class Explanation(NamedTuple):
    """What :func:`verify_explain` found: the verdict, the stage that decided it ("no answer",
    "string", "integer", "several values", "units", "guard", "exact number", "math-verify",
    "gold misread", "timeout", "error"), the two answers as compared, and a note (e.g. each item's stage). A NamedTuple,
    not a dataclass: verl may load this file as a module missing from ``sys.modules``."""
    verdict: Verdict
    stage: str
    answer: str | None
    gold: str
    detail: str = ""


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
            bump("exact_match")
            return _OK, "string", ""
        if _INT.fullmatch(norm_pred) and _INT.fullmatch(norm_gold):
            bump("integer")
            return (_OK if _int_key(norm_pred) == _int_key(norm_gold) else _NO), "integer", ""
        if "," in norm_pred or "," in norm_gold:  # 1,22 against 1.22: a decimal comma
            norm_pred, norm_gold = verify_numbers.decimal_comma(norm_pred, norm_gold)
        if depth < 2:
            shapes = verify_values.shape(norm_pred), verify_values.shape(norm_gold)
            interval = _inequality_as_interval(norm_pred, norm_gold, shapes, timeout, deadline,
                                               depth, cheap)
            if interval is not None:
                return interval
            if shapes[0].kind != "single" or shapes[1].kind != "single":
                decided = _several(*shapes, timeout, deadline, depth, cheap)
                if decided is not _SINGLE:
                    return decided
    units = _units(pred, gold, timeout, deadline, depth, cheap)
    if units is not None:
        return units
    pred_body, pred_pct = verify_values.split_percent(pred)
    gold_body, gold_pct = verify_values.split_percent(gold)
    if (pred_pct or gold_pct) and norm_pred is not None:
        norm_pred, norm_gold = normalize(pred_body), normalize(gold_body)
        if norm_pred and norm_pred == norm_gold:
            bump("exact_match")
            return _OK, "string", "percent mark dropped"
    if risky(pred_body) or risky(gold_body):
        bump("guarded")
        return _NO, "guard", ""
    if norm_pred is not None:
        exact = verify_numbers.compare(norm_pred, norm_gold, pred_pct, gold_pct)
        if exact is not None:
            bump("exact_number")
            return (_OK if exact else _NO), "exact number", ""
    if cheap:
        return _UNDECIDED
    if deadline is not None:
        timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            return _TIMEOUT, "timeout", "no time left for math-verify"
    verdict, note = sympy_verdict(brace_fracs(pred_body), brace_fracs(gold_body), timeout)
    if note:
        bump("gold_misread")
        return verdict, "gold misread", note
    return verdict, ("timeout" if verdict is _TIMEOUT else "math-verify"), ""


def _inequality_as_interval(norm_pred: str, norm_gold: str, shapes, timeout: float,
                            deadline: float | None, depth: int, cheap: bool):
    """An inequality in one variable on one side, an interval on the other (``0<x<1`` against
    ``(0,1)``): the inequality is read as its interval and the two compared as intervals;
    None when that is not the case."""
    for i, (mine, other_shape) in enumerate(((norm_pred, shapes[1]), (norm_gold, shapes[0]))):
        interval = verify_values.as_interval(mine) if other_shape.kind == "tuple" else None
        if interval is None or len(other_shape.items) != 2:
            continue
        shape = verify_values.shape(interval)
        both = (shape, other_shape) if i == 0 else (other_shape, shape)
        decided = _several(*both, timeout, deadline, depth, cheap)
        if decided is _UNDECIDED or decided is _SINGLE:
            return decided if decided is _UNDECIDED else None
        return decided[0], decided[1], "inequality read as an interval; " + decided[2]
    return None


def _units(pred: str, gold: str, timeout: float, deadline: float | None, depth: int,
           cheap: bool):
    """Answers ending in a unit written as text: different units are wrong; otherwise the values
    decide (a bare number matches a gold with a unit, the question's unit). None when neither
    side has a unit."""
    pred_value, pred_unit = verify_values.split_unit(pred)
    gold_value, gold_unit = verify_values.split_unit(gold)
    if pred_unit is None and gold_unit is None:
        return None
    if pred_unit is not None and gold_unit is not None and pred_unit != gold_unit:
        bump("units")
        return _NO, "units", f"{pred_unit} against {gold_unit}"
    return _decide(pred_value, gold_value, timeout, deadline, depth, cheap)


def _several(pred: verify_values.Shape, gold: verify_values.Shape, timeout: float,
             deadline: float | None, depth: int, cheap: bool):
    """Compare answers of which at least one has several values (rules: module docstring), each
    pair of items through :func:`_decide`, cheap stages first; _SINGLE where the single-value
    stages should decide (a tuple or set against one expression). The items' math-verify calls
    share one ``timeout`` (from ``deadline``, else from when the first one starts)."""
    def verdict(v: Verdict, note: str):
        bump("several_values")
        return v, "several values", note

    if len(pred.items) > verify_values.MAX_VALUES or len(gold.items) > verify_values.MAX_VALUES:
        bump("guarded")
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
    with contextlib.ExitStack() as stack:
        for cheap_pass in ((True,) if cheap else (True, False)):
            if not cheap_pass and deadline is None:
                # one worker held for every item: its start-up, or a wait for a free one, is not
                # the items' time
                stack.enter_context(verify_worker.holding())
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
    bump("calls")
    try:
        out = _explain(pred, gold, timeout)
    except VerifierUnavailable:
        raise
    except Exception as e:
        log.warning("answer verification failed; scored wrong", exc_info=True)
        bump("crashes")
        out = (_NO, "error", pred, "" if gold is None else str(gold), repr(e)[:200])
    counter = _VERDICT_COUNTER.get(out[0])
    if counter:
        bump(counter)
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
