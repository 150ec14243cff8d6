"""The risk guard: answers that could take sympy unbounded time or memory are scored wrong
without it (too long, too deep, power towers, huge powers and factorials).

Ours; math-verify has none. Its time limit (``signal.alarm``) works only in a main thread, and no
signal stops a single big-integer operation (CPython and GMP do not check for signals inside
one), so ``9^{9^{9}}`` must be refused before sympy sees it. Part of
:mod:`rlboundary.tasks.verify`, which re-exports :func:`risky` and the limits.
"""

from __future__ import annotations

import math
import re

MAX_LEN = 2000  # longer answers are guarded (scored wrong without sympy)
MAX_DEPTH = 50  # bracket nesting limit
MAX_EXPONENT = 1e5  # numeric exponents above this are guarded (power towers land here)
MAX_DIGITS = 1e6  # numeric powers with more digits than this are guarded
MAX_FACTORIAL = 1e4  # n! with numeric n above this is guarded

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
