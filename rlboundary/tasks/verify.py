"""Final-answer extraction and equivalence checking, safe to run on untrusted model output.

Why not verl's scorers: its default ``math`` scorers compare normalised strings (``0.5`` vs
``\\frac{1}{2}`` is wrong) and do not know Omni-MATH-Rule; its optional math-verify scorer
abandons timed-out tasks in a process pool without killing them, so hostile answers clog it.
math-verify's own limit is ``signal.alarm``, which works only in the main thread, so in a reward
loop (threads, Ray actors) it runs unbounded and an answer like ``9^{9^{9}}`` stalls training.

:func:`verify` works in stages: normalised string equality (plain integers compared as
integers), no sympy; a guard that scores dangerous answers wrong (too long, too deep, power
towers, huge factorials); then math-verify in a persistent worker process per calling thread,
stopped by a SIGALRM inside it at the time limit and killed (then lazily replaced) if it still
overruns, e.g. inside a GMP call (:mod:`rlboundary.tasks.verify_worker`). Timeouts score wrong and are counted apart; nothing raises;
model text is never eval'd. Workers fork from a ``forkserver`` with math-verify warmed (a
restart costs ~50 ms), so, as with any forkserver user, a calling *script* needs the
``if __name__ == "__main__":`` guard. verl: ``reward.custom_reward_function.path=
pkg://rlboundary.tasks.verify`` (a file path works too), ``name=compute_score``.

Difference from the study: it scored Omni-MATH-Rule with that dataset's rule-based answer
checks; we use math-verify (symbolic and numeric equivalence), which accepts some equivalent
forms those rules reject, so absolute accuracies differ somewhat from the paper's.
"""

from __future__ import annotations

import enum
import itertools
import logging
import math
import operator
import re
import threading
from collections import OrderedDict

from rlboundary.tasks import verify_worker
from rlboundary.tasks.verify_worker import (  # noqa: F401  (public)
    VerifierUnavailable,
    shutdown,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0  # seconds per math-verify comparison
MAX_LEN = 2000  # longer answers are guarded (scored wrong without sympy)
MAX_DEPTH = 50  # bracket nesting limit
MAX_EXPONENT = 1e5  # numeric exponents above this are guarded (power towers land here)
MAX_DIGITS = 1e6  # numeric powers with more digits than this are guarded
MAX_FACTORIAL = 1e4  # n! with numeric n above this is guarded
CACHE_SIZE = 50_000  # (pred, gold) pairs remembered from the sympy path

_COUNTERS = ("calls", "exact_match", "integer", "sympy_calls", "cache_hits", "correct",
             "timeouts", "guarded", "unparseable", "worker_restarts", "crashes")


class Verdict(str, enum.Enum):
    CORRECT = "correct"
    WRONG = "wrong"
    TIMEOUT = "timeout"
    UNPARSEABLE = "unparseable"


_stats_lock = threading.Lock()
_stats = dict.fromkeys(_COUNTERS, 0)
_restart_base = 0  # the workers' restart count at the last reset


def _bump(key: str) -> None:
    with _stats_lock:
        _stats[key] += 1


def stats() -> dict:
    """Counters since the last reset, all threads together. ``exact_match``/``integer``: decided
    by the string path; ``sympy_calls``: sent to a worker; ``crashes``: worker failures."""
    with _stats_lock:
        return {**_stats, "worker_restarts": verify_worker.restart_count() - _restart_base}


def reset_stats() -> None:
    global _restart_base
    with _stats_lock:
        _stats.update(dict.fromkeys(_COUNTERS, 0))
        _restart_base = verify_worker.restart_count()


# ----------------------------------------------------------------------------- extraction
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_STEP = tuple(1 if c == ord("{") else -1 if c == ord("}") else 0 for c in range(256))


def _close_brace(s: str, i: int) -> int:
    """Index of the brace matching the ``{`` at s[i], or -1; a C-speed scan (~0.15 s per MB)."""
    steps = map(_BRACE_STEP.__getitem__, s[i:].encode("latin-1", "replace"))
    try:
        return i + operator.indexOf(itertools.accumulate(steps), 0)
    except ValueError:
        return -1


def _last_boxed(s: str, tries: int = 3) -> str | None:
    """Content of the last balanced ``\\boxed{..}``/``\\fbox{..}``; a few unclosed ones skipped."""
    starts = [m.end() - 1 for m in _BOX.finditer(s)]
    for i in reversed(starts[-tries:]):
        j = _close_brace(s, i)
        if j >= 0:
            return s[i + 1:j]
    return None


def extract_answer(text: str | None) -> str | None:
    """The last ``<answer>..</answer>``, else the last ``\\boxed{..}``, stripped; else None."""
    if not text:
        return None
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    if start >= 0:
        return text[start + len("<answer>"):end].strip()
    boxed = _last_boxed(text)
    return boxed.strip() if boxed is not None else None


def _unwrap(s: str) -> str:
    """``\\[ \\boxed{x} \\]`` -> ``x``; anything without a box is only stripped."""
    s = s.strip()
    if "\\boxed" in s or "\\fbox" in s:
        inner = _last_boxed(s)
        if inner is not None and inner.strip():
            return inner.strip()
    return s


# ----------------------------------------------------------------------------- normalisation
_DROP = re.compile(r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\displaystyle|\\[!,;: ]|\\q?quad"
                   r"|\\\$|\$|\\\[|\\\]|\\\(|\\\)|~|\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\degree")
_SUBS = [(re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|operatorname)\s*\{([^{}]*)\}"), r"\1"),
         (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
         (re.compile(r"\\frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),
         (re.compile(r"\\sqrt\s*(\d)"), r"\\sqrt{\1}"),
         (re.compile(r"\\(le|ge)(?![a-zA-Z])"), r"\\\1q"),
         (re.compile(r"\s+"), " "),
         (re.compile(r"(?<![A-Za-z0-9]) | (?![A-Za-z0-9])"), "")]  # keep "pi r", "2 3"


def normalize(s: str | None) -> str:
    """Cheap, conservative string normalisation: equal outputs mean equal answers."""
    s = (s or "").strip()
    while s.startswith(("\\boxed", "\\fbox")) and _close_brace(s, i := s.find("{")) == len(s) - 1:
        s = s[i + 1:-1].strip()
    s = _DROP.sub("", s).strip()
    for pattern, repl in _SUBS:
        s = pattern.sub(repl, s)
    return s[:-1] if s.endswith(".") and not s.endswith("..") else s


_INT = re.compile(r"([+-]?)0*(\d+)")


def _int_key(s: str) -> str:
    sign, digits = _INT.fullmatch(s).groups()
    return "-" + digits if sign == "-" and digits != "0" else digits


# ----------------------------------------------------------------------------- risk guard
_NUMBER = re.compile(r"\s*[-+]?\s*(\d+(?:\.\d*)?)")  # the sign is ignored: 2^{-10^9} is as bad
_TRAILING_NUMBER = re.compile(r"(\d+(?:\.\d*)?)\s*$")


def _pairs(s: str) -> tuple[dict, int]:
    """Matching {} and () positions (both ways) and the maximum depth of {([ brackets."""
    pairs, stacks, depth, max_depth = {}, {"}": [], ")": []}, 0, 0
    for m in re.finditer(r"[{}()\[\]]", s):
        ch, i = m.group(), m.start()
        if ch in "{([":
            depth += 1
            max_depth = max(max_depth, depth)
            if ch != "[":
                stacks["}" if ch == "{" else ")"].append(i)
        else:
            depth = max(depth - 1, 0)
            if ch != "]" and stacks[ch]:
                j = stacks[ch].pop()
                pairs[i], pairs[j] = j, i
    return pairs, max_depth


def _exp10(x: float) -> float:
    return math.inf if x > 300 else 10.0 ** x


def _log10_tower(s: str, i: int, pairs: dict) -> tuple[float | None, int]:
    """(log10 value, end) of the purely numeric power tower at s[i:] (``9^9^9``, ``{10^{10}}``,
    ``(2^3)``); inf on overflow; (None, i) when it is not numeric."""
    while i < len(s) and s[i].isspace():
        i += 1
    if i < len(s) and s[i] in "{(":
        j = pairs.get(i, -1)
        value, k = _log10_tower(s, i + 1, pairs) if j > i else (None, i)
        if value is None or k > j or s[k:j].strip():
            return None, i
        end = j + 1
    else:
        m = _NUMBER.match(s, i)
        if not m:
            return None, i
        number = float(m.group(1))
        value, end = (math.log10(number) if number > 0 else -math.inf), m.end()
    k = end
    while k < len(s) and s[k].isspace():
        k += 1
    if k < len(s) and s[k] == "^":
        exp, k2 = _log10_tower(s, k + 1, pairs)
        if exp is not None:
            return (value * _exp10(exp) if value > 0 else 0.0), k2
    return value, end


def _log10_before(s: str, p: int, pairs: dict, memo: dict) -> float | None:
    """log10 of the numeric operand ending just before s[p] (``1000!``, ``{10^6}!``, ``9!!``)."""
    if p in memo:
        return memo[p]
    q, value = p - 1, None
    while q >= 0 and s[q].isspace():
        q -= 1
    if q >= 0 and s[q] == "!":  # (n!)!
        inner = _log10_before(s, q, pairs, memo)
        if inner is not None:
            n = _exp10(inner)
            value = math.lgamma(n + 1) / math.log(10) if n < 1e300 else n
    elif q >= 0 and s[q] in "})" and q in pairs:
        value, end = _log10_tower(s, pairs[q], pairs)
        if value is None or end != q + 1:  # else the last operand inside: (9!)!, (n+10^6)!
            value = _log10_before(s, q, pairs, memo)
    elif m := _TRAILING_NUMBER.search(s, max(0, q - 40), q + 1):
        value = math.log10(float(m.group(1)) or 1.0)
    memo[p] = value
    return value


def risky(s: str) -> bool:
    """True when handing ``s`` to sympy could take unbounded time or memory."""
    if len(s) > MAX_LEN:
        return True
    pairs, depth = _pairs(s)
    if depth > MAX_DEPTH:
        return True
    memo: dict = {}
    try:
        for m in re.finditer(r"\^", s):
            exp, _ = _log10_tower(s, m.end(), pairs)
            if exp is not None and exp > math.log10(MAX_EXPONENT):
                return True
            base = _log10_before(s, m.start(), pairs, memo) if exp is not None else None
            if base is not None and base > 0 and base * _exp10(exp) > MAX_DIGITS:
                return True
        for m in re.finditer(r"!", s):
            n = _log10_before(s, m.start(), pairs, memo)
            if n is not None and n > math.log10(MAX_FACTORIAL):
                return True
    except RecursionError:
        return True
    return False


# ----------------------------------------------------------------------------- public API
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


def _verify(pred, gold, timeout: float) -> Verdict:
    if pred is None or not str(pred).strip():
        return Verdict.UNPARSEABLE
    pred, gold = _unwrap(str(pred)), _unwrap("" if gold is None else str(gold))
    if not gold:
        return Verdict.WRONG
    if len(pred) <= 4 * MAX_LEN:  # longer ones cannot pass the guard anyway
        norm_pred, norm_gold = normalize(pred), normalize(gold)
        if norm_pred and norm_pred == norm_gold:
            _bump("exact_match")
            return Verdict.CORRECT
        if _INT.fullmatch(norm_pred) and _INT.fullmatch(norm_gold):
            _bump("integer")
            return Verdict.CORRECT if _int_key(norm_pred) == _int_key(norm_gold) else Verdict.WRONG
    if risky(pred) or risky(gold):
        _bump("guarded")
        return Verdict.WRONG
    return _sympy_verdict(pred, gold, timeout)


def verify(pred: str | None, gold: str, timeout: float | None = None) -> Verdict:
    """Is the extracted answer ``pred`` equivalent to ``gold``?

    No answer makes it raise; only :class:`VerifierUnavailable` (no worker process can be
    started at all) does, since that is a broken set-up that would score everything wrong.
    """
    _bump("calls")
    try:
        verdict = _verify(pred, gold, DEFAULT_TIMEOUT if timeout is None else float(timeout))
    except VerifierUnavailable:
        raise
    except Exception:
        log.warning("answer verification failed; scored wrong", exc_info=True)
        _bump("crashes")
        verdict = Verdict.WRONG
    counter = {Verdict.CORRECT: "correct", Verdict.TIMEOUT: "timeouts",
               Verdict.UNPARSEABLE: "unparseable"}.get(verdict)
    if counter:
        _bump(counter)
    return verdict


def is_equivalent(pred: str | None, gold: str, timeout: float | None = None) -> bool:
    return verify(pred, gold, timeout) is Verdict.CORRECT


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> dict:
    """verl ``custom_reward_function`` entry point; ``ground_truth`` may be a list (any match).

    ``timeout`` may come in ``reward_kwargs``; other keyword arguments are ignored.
    """
    pred = extract_answer(solution_str)
    many = isinstance(ground_truth, (list, tuple)) or type(ground_truth).__name__ == "ndarray"
    verdicts = []
    for gold in list(ground_truth) if many else [ground_truth]:
        verdicts.append(verify(pred, gold, kwargs.get("timeout")))
        if verdicts[-1] is Verdict.CORRECT:
            break
    acc = bool(verdicts) and verdicts[-1] is Verdict.CORRECT
    return {"score": 1.0 if acc else 0.0, "acc": acc, "pred": pred or "",
            "timeout": not acc and Verdict.TIMEOUT in verdicts}
