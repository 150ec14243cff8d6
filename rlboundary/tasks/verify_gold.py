"""What math-verify's parse of a gold answer may decide: a parse that lost what the gold says
never rewards, and no identity holds between expressions in different variables.

math-verify read the Omni-MATH-Rule gold ``\\dfrac {n^2} 4 + \\dfrac n 2`` as the number 2 (its
first parsed element), and then called the bare answer ``2`` correct. :func:`misread` names such
parses (variables, relations, set braces or a number in another base written in the gold, a
plain number in the parse); :func:`free_symbols` gives what the variable check compares. Runs in
the verifier's worker process (:mod:`.verify_worker`), on sympy objects; never raises.
"""

from __future__ import annotations

import re

#: A ``\\text{..}``-like group: words in an answer, never variables.
TEXT_GROUP = re.compile(r"\\(?:text|textrm|textbf|mathrm|mbox|operatorname)\s*\{[^{}]*\}")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_RELATION = re.compile(r"<|>|\\(?:le|ge|leq|geq|neq|ne|in|notin|subset|subseteq|cup|cap|mid)(?![A-Za-z])|="
                       r"|\\\{|\\\}")
#: Letters that are numbers to math-verify (Euler's e) or commonly so (i); never "lost".
_CONSTANT_LETTERS = frozenset("ei")


def written_variables(text: str) -> set[str]:
    """The one-letter variables written in a LaTeX answer: letters outside command names and
    ``\\text{}``-like groups, Euler's ``e`` and ``i`` aside (``\\frac{n^2}{4}`` -> {"n"})."""
    bare = _LATEX_COMMAND.sub(" ", TEXT_GROUP.sub(" ", text))
    return set(re.findall(r"[A-Za-z]", bare)) - _CONSTANT_LETTERS


_MATH = re.compile(r"\$\$?(.+?)\$\$?|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_BASE = re.compile(r"\d_\{?\d+\}?")


_LAST_SIDE = re.compile(r"=|\\equiv(?![A-Za-z])")
_MODULUS = re.compile(r"\\[bp]?mod(?![A-Za-z])\s*(?:\{[^{}]*\}|\w+)\s*\)?\s*$|\(\s*$")


def value_part(s: str) -> str:
    """What math-verify reads as the value of ``x = 5``, ``a = b = 5`` and ``N \\equiv 672
    \\pmod{1000}``: the last side, without the modulus (``5``, ``672``); else ``s``."""
    sides = _LAST_SIDE.split(s)
    if len(sides) < 2:
        return s
    return _MODULUS.sub("", sides[-1]).strip()


def _plain(expr) -> bool:
    return bool(getattr(expr, "is_number", False)) and not getattr(expr, "free_symbols", None)


def answer_part(gold: str) -> str:
    """The math of a gold written as prose with inline math (``The least value of \\(a_{10}\\)
    is \\(248\\).``): its last delimited segment, which math-verify reads; else the gold."""
    segments = [next(g for g in m.groups() if g is not None) for m in _MATH.finditer(gold)]
    return segments[-1].strip() if segments else gold


def misread(gold: str, parsed: list) -> str:
    """Why math-verify's parse of ``gold`` lost what the gold says, or "" when it did not: its
    first element is a plain number while the gold (its math, :func:`answer_part`) writes
    variables, a number in another base (``11111001110_8``), or relations or set braces (the
    gold's :func:`value_part`: math-verify reads the last side of ``x = 5``, ``a = b = 5`` and
    ``N \\equiv 672 \\pmod{1000}`` on purpose)."""
    first = parsed[0]
    body = value_part(answer_part(gold))
    one = next(iter(first)) if getattr(first, "is_FiniteSet", False) and len(first) == 1 \
        else first  # "{11111001110_8}": its braces read as a set of one
    if _plain(one) and _BASE.search(body):
        return f"a number in another base read as the number {one}"
    if not _plain(first):
        return ""
    variables = written_variables(body)
    if variables:
        return f"variables {''.join(sorted(variables))} read as the number {first}"
    if _RELATION.search(TEXT_GROUP.sub(" ", body)):
        return f"a relation or set read as the number {first}"
    return ""


def free_symbols(expr) -> set | None:
    """The free symbols of a plain expression, an assignment ``x = v`` counted as ``v``; None
    for anything else (relations, sets, math-verify's string fallback): those are left to
    math-verify."""
    from sympy import Eq, Expr, Symbol

    if isinstance(expr, Eq) and isinstance(expr.lhs, Symbol):
        expr = expr.rhs
    return set(expr.free_symbols) if isinstance(expr, Expr) else None
