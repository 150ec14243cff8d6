"""Answers with several values, and the percent mark: how the verifier reads their shape.

Several values (a choice of ours; math-verify has its own set/tuple parsing, but it reads
``1 and 2 and 3`` and ``(1, 2), (2, 1)`` less predictably and compares elements with its absolute
numeric tolerance):

- an **unordered list of solutions**: top-level items split by ``,`` ``;`` and the words
  ``and``/``or`` (``1, 2, 3``, ``1 and 2 and 3``, ``21, 16 or 11``, ``x=1 or x=2``), or a set
  ``\\{1, 2\\}`` (``A OR B``, as one Omni-MATH-Rule gold gives two forms of its answer, too: an
  answer naming a wrong form beside a right one is wrong). One ``\\pm`` in an item stands for two items (``\\pm\\frac94``). Words split only
  when no item holds a word of two or more letters, so prose (``if and only if``) stays one value.
- an **ordered tuple**: one bracketed group with top-level commas, ``(1, 2)``, and intervals
  ``(0, 1]``, ``[2, \\infty)``; the brackets are part of it.
- anything else is a **single** value. ``58,500`` and ``10{,}080`` are single numbers (thousands
  groups: three digits after each comma, none after the last group, a first group that does not
  start with ``0``), as math-verify reads them; but inside a bracket pair every top-level comma
  separates items, so ``(5,120)`` is the pair ``(5, 120)`` and ``(0,120)`` never reads as 120.

The rules of the comparison itself are in :func:`rlboundary.tasks.verify._several`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_VALUES = 32  # answers with more items than this are guarded

_PCT = re.compile(r"\s*(?:\\%|%|\\(?:text|textrm|mathrm|mbox)\s*\{\s*(?:\\%|%|percent)\s*\}"
                  r"|\bpercent)\s*\.?\s*$")
_THOUSANDS = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?:(?:,|\{,\})\d{3})+(?![\d,])")
_SPLIT = re.compile(r"\\\{|\\\}|[{}()\[\],;]|(?<![A-Za-z\\])(?:and|or|AND|OR)(?![A-Za-z])")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_CMD = re.compile(r"\\[A-Za-z]+")
_PM = re.compile(r"\\(?:pm|mp)(?![A-Za-z])")
_OPEN, _CLOSE = "([{", ")]}"


def split_percent(s: str) -> tuple[str, bool]:
    """(``s`` without a trailing percent mark, whether it had one): ``%``, ``\\%``,
    ``\\text{ percent}``, ``\\text{\\%}`` and the word ``percent`` are the same mark."""
    m = _PCT.search(s, max(0, len(s.rstrip()) - 48))  # the mark is at the end
    if m is None or not s[:m.start()].strip():
        return s, False
    return s[:m.start()].rstrip(), True


@dataclass(frozen=True)
class Shape:
    """kind: "single" | "set" | "tuple"; items: the values; brackets: a tuple's two brackets."""
    kind: str
    items: tuple[str, ...]
    brackets: str = ""


def _top_level(s: str, bracketed: bool = False) -> tuple[list[tuple[int, int, str]], bool]:
    """Separators at bracket depth 0 as (start, end, text), and whether the brackets balance.
    ``bracketed``: ``s`` is the inside of a bracket pair, where every comma separates items."""
    seps, depth = [], 0
    protected = [(m.start(), m.end()) for m in _THOUSANDS.finditer(s)] \
        if "," in s and not bracketed else []
    for m in _SPLIT.finditer(s):
        tok = m.group()
        if tok in ("\\{", "{", "(", "["):
            depth += 1
        elif tok in ("\\}", "}", ")", "]"):
            depth -= 1
            if depth < 0:
                return [], False
        elif depth == 0 and not any(a <= m.start() < b for a, b in protected):
            seps.append((m.start(), m.end(), tok))
    return seps, depth == 0


def _cut(s: str, seps: list[tuple[int, int, str]]) -> list[str]:
    out, prev = [], 0
    for a, b, _ in seps:
        out.append(s[prev:a].strip())
        prev = b
    out.append(s[prev:].strip())
    return out


def _expand_pm(items: list[str]) -> list[str]:
    out = []
    for item in items:
        found = _PM.findall(item)
        if len(found) != 1:
            out.append(item)
            continue
        first, second = ("+", "-") if found[0] == "\\pm" else ("-", "+")
        for sign in (first, second):
            v = _PM.sub(sign, item).strip()
            out.append(v[1:].strip() if v.startswith("+") else v)
    return out


def _outer_pair(s: str) -> tuple[str, str, str] | None:
    """(open, inner, close) when one bracket pair encloses all of ``s`` (``\\{..\\}`` too)."""
    if s.startswith("\\{") and s.endswith("\\}"):
        opener, inner, closer = "\\{", s[2:-2], "\\}"
    elif len(s) >= 2 and s[0] in _OPEN and s[-1] in _CLOSE:
        opener, inner, closer = s[0], s[1:-1], s[-1]
    else:
        return None
    depth = 0
    for m in _SPLIT.finditer(inner):  # the pair encloses all iff inner never dips below 0
        tok = m.group()
        if tok in ("\\{", "{", "(", "["):
            depth += 1
        elif tok in ("\\}", "}", ")", "]"):
            depth -= 1
            if depth < 0:
                return None
    return (opener, inner, closer) if depth == 0 else None


def shape(s: str) -> Shape:
    """The shape of the normalised answer ``s`` (see the module docstring)."""
    if not any(c in s for c in ",;") and "and" not in s.lower() and "or" not in s.lower() \
            and "\\pm" not in s and "\\mp" not in s and "\\{" not in s:
        return Shape("single", (s,))
    seps, balanced = _top_level(s)
    if not balanced:
        return Shape("single", (s,))
    if seps:
        hard = [x for x in seps if x[2] in ",;"]
        items = [x for x in _cut(s, seps) if x]
        # and/or separators only between math-like items
        if len(hard) < len(seps) and any(_WORD.search(_CMD.sub(" ", x)) for x in items):
            items = [x for x in _cut(s, hard) if x]
        items = _expand_pm(items)
        if len(items) >= 2:
            return Shape("set", tuple(items))
        return Shape("single", (items[0] if items else s,))
    pair = _outer_pair(s)
    if pair is not None:
        opener, inner, closer = pair
        inner_seps, _ = _top_level(inner, bracketed=True)
        commas = [x for x in inner_seps if x[2] == ","]
        if opener == "\\{":
            items = _expand_pm([x for x in _cut(inner, inner_seps) if x]) if inner_seps \
                else _expand_pm([inner.strip()])
            return Shape("set", tuple(items), "\\{\\}") if items else Shape("single", (s,))
        if commas and len(commas) == len(inner_seps):
            return Shape("tuple", tuple(_cut(inner, commas)), opener + closer)
    items = _expand_pm([s])
    return Shape("set", tuple(items)) if len(items) == 2 else Shape("single", (s,))


_UNIT = re.compile(r"^(?P<value>.*?[^\s\\{])(?:\s|~|\\[,;:! ]|\\q?quad)*"
                   r"\\(?:text|textrm|mathrm|mbox)\s*\{\s*(?P<unit>[A-Za-z][A-Za-z .]*?)\s*\.?\s*\}"
                   r"(?P<power>\s*\^\s*(?:\{\s*\d\s*\}|\d))?\s*\.?$")


def split_unit(s: str) -> tuple[str, str | None]:
    """(value, unit) of an answer that ends in a unit written as text (``5 \\text{ cm}^2`` ->
    ``("5", "cm^2")``), else ``(s, None)``. The unit is compared as written, spaces aside."""
    m = _UNIT.match(s.strip())
    if m is None:
        return s, None
    power = re.sub(r"[\s{}^]", "", m.group("power") or "")
    unit = m.group("unit").replace(" ", "").rstrip(".")
    return m.group("value").strip(), unit + (f"^{power}" if power else "")


_SIDE = r"(?P<{0}>[^<>=]*?[^<>=\s])"
_LESS = {"<": ("(", ")"), "\\leq": ("[", "]"), "\\le": ("[", "]")}
_MORE = {">": ("(", ")"), "\\geq": ("[", "]"), "\\ge": ("[", "]")}
_OP = r"(?P<{0}><|>|\\leq?|\\geq?)"
_CHAIN = re.compile(rf"^{_SIDE.format('a')}\s*{_OP.format('o1')}\s*(?P<v>[A-Za-z])\s*"
                    rf"{_OP.format('o2')}\s*{_SIDE.format('b')}$")
_ONE = re.compile(rf"^(?P<v>[A-Za-z])\s*{_OP.format('o')}\s*{_SIDE.format('c')}$")


def as_interval(s: str) -> str | None:
    """The interval a simple inequality in one variable describes, in interval notation:
    ``0<x<1`` -> ``(0,1)``, ``2\\geq x>1`` -> ``(1,2]``, ``x\\geq 3`` -> ``[3,\\infty)``; None for
    anything else (normalised input: ``\\le`` is ``\\leq``)."""
    if "<" not in s and ">" not in s and "\\le" not in s and "\\ge" not in s:
        return None
    m = _CHAIN.match(s)
    if m:
        o1, o2 = m.group("o1"), m.group("o2")
        if o1 in _LESS and o2 in _LESS:
            return _LESS[o1][0] + m.group("a") + "," + m.group("b") + _LESS[o2][1]
        if o1 in _MORE and o2 in _MORE:
            return _MORE[o2][0] + m.group("b") + "," + m.group("a") + _MORE[o1][1]
        return None
    m = _ONE.match(s)
    if m is None:
        return None
    op, c = m.group("o"), m.group("c")
    if op in _LESS:
        return "(-\\infty," + c + _LESS[op][1]
    return _MORE[op][0] + c + ",\\infty)"
