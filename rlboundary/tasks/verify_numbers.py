"""Exact comparison of plain numbers, so that no wrong tiny number is scored correct.

math-verify compares numbers by ``(a - b).evalf(chop=True)`` and by rounding floats to 6
decimal places (``math_verify.grader.sympy_numeric_eq``), i.e. with an *absolute* tolerance:
``\\frac{1}{2^{98}}`` equals ``\\frac{1}{2^{99}}`` there, and ``0.0000001`` equals ``0.0000002``.
Here, when both sides are plain numbers, they are evaluated as rationals
(:class:`fractions.Fraction`) and compared exactly; only when either side is written as a decimal
with a fractional part (it may be rounded, e.g. ``0.333333`` for ``\\frac13``) do they match within
a *relative* tolerance of :data:`REL_TOL`, or when the decimal is the other number rounded to
its own places and has :data:`MIN_ROUNDED_DIGITS` significant digits (``2.6667`` for
``\\frac83``; ``0.3`` never matches ``\\frac13``). So two distinct numbers that differ by a factor of 2
or more never match, however small they are.

A plain number (on the output of :func:`rlboundary.tasks.verify.normalize`) is built from
integers and decimals (numbers in another base, ``11111001110_8``, by their value; ``58,500``
and ``10{,}080`` thousands groups included; a group that starts
with ``0`` is never one, and inside round brackets a comma always separates: ``(2,100)`` is a
pair, never 2100), scientific notation (``4.8e8`` is ``4.8 \times 10^{8}``: a decimal, ``e``, an
integer, no space; ``2e`` alone is not plain and goes to math-verify as Euler's number),
``+ - * /``,
``\\cdot``, ``\\times``, ``\\div``, ``\\frac{a}{b}``, braces and round brackets, integer powers
``a^{b}`` / ``a^5`` / ``a^10`` (as math-verify reads ``2^10``: 1024), factorials ``n!`` and a mixed
number ``3\\frac{1}{2}`` (3.5, as math-verify reads it). Anything else (``\\sqrt``, ``\\pi``,
letters, ``n!!``, ``2\\,3``) is not plain and is left to math-verify. ``x=5`` is read as ``5``
(math-verify unwraps an assignment the same way); ``x=5`` against ``y=5`` is left to math-verify.
Sizes are bounded (:data:`MAX_BITS`, :data:`MAX_FACTORIAL`, :data:`WORK_BITS`): a larger value
is "not plain" and goes on to math-verify, under the worker's time limit.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

REL_TOL = Fraction(1, 10**6)  # decimals match within one part in a million (of the larger side)
MAX_BITS = 1 << 17  # numerator and denominator bit lengths (10000! has 118,459 bits)
MAX_FACTORIAL = 10_000
WORK_BITS = 1 << 21  # the operand bits all operations of one parse may touch together

_TOKEN = re.compile(
    r"(?P<num>\d+_(?:\{\d+\}|\d)|[1-9]\d{0,2}(?:,\d{3})+(?![\d,])(?:\.\d+)?"
    r"|(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)"
    r"|(?P<cmd>\\(?:frac|cdot|times|div)(?![a-zA-Z]))"
    r"|(?P<op>[-+*/^!{}()])")
#: The same without thousands groups: inside brackets a comma separates items ("(2,100)").
_TOKEN_IN_BRACKETS = re.compile(_TOKEN.pattern.replace(
    r"|[1-9]\d{0,2}(?:,\d{3})+(?![\d,])(?:\.\d+)?", "", 1))
_ASSIGN = re.compile(r"([A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?)=(?!=)(.*)")
_MIXED = re.compile(r"(-?)(\d+)\\frac\{(\d+)\}\{(\d+)\}")


class _NotPlain(Exception):
    pass


def _tokens(s: str) -> list[tuple[str, str]]:
    out, i, depth = [], 0, 0
    s = s.replace("{,}", ",")
    while i < len(s):
        if s[i] == " ":  # "2 3" stays two numbers: the parser refuses juxtaposition
            i += 1
            continue
        m = (_TOKEN_IN_BRACKETS if depth else _TOKEN).match(s, i)
        if not m:
            raise _NotPlain
        depth += {"(": 1, ")": -1}.get(m.group(), 0)
        out.append((m.lastgroup, m.group()))
        i = m.end()
    return out


class _Parser:
    """Recursive descent over the tokens; every value is a Fraction of bounded size."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.toks, self.i, self.inexact, self.work = tokens, 0, False, 0

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise _NotPlain
        self.i += 1
        return tok

    def check(self, v: Fraction, *operands: Fraction) -> Fraction:
        bits = max(v.numerator.bit_length(), v.denominator.bit_length())
        self.work += sum(o.numerator.bit_length() + o.denominator.bit_length() for o in operands)
        if bits > MAX_BITS or self.work > WORK_BITS:
            raise _NotPlain
        return v

    def parse(self) -> Fraction:
        v = self.expr()
        if self.i != len(self.toks):
            raise _NotPlain
        return v

    def expr(self) -> Fraction:
        v = self.term()
        while self.peek() in ("+", "-"):
            op, w = self.take(), self.term()
            v = self.check(v + w if op == "+" else v - w, v, w)
        return v

    def term(self) -> Fraction:
        v = self.unary()
        while self.peek() in ("*", "/", "\\cdot", "\\times", "\\div"):
            op, w = self.take(), self.unary()
            if op in ("/", "\\div"):
                if w == 0:
                    raise _NotPlain
                v = self.check(v / w, v, w)
            else:
                v = self.check(v * w, v, w)
        return v

    def unary(self) -> Fraction:
        if self.peek() in ("+", "-"):
            sign = self.take()
            v = self.unary()
            return -v if sign == "-" else v
        return self.power()

    def power(self) -> Fraction:
        base = self.postfix()
        if self.peek() != "^":
            return base
        self.take()
        if self.peek() == "{":
            self.take()
            exp = self.expr()
            self.take("}")
        else:  # 2^5, and 2^10 read as math-verify reads it
            kind_tok = self.toks[self.i] if self.i < len(self.toks) else None
            if kind_tok is None or kind_tok[0] != "num" or "." in kind_tok[1]:
                raise _NotPlain
            exp = self.number(self.take())
        if self.peek() == "^" or exp.denominator != 1 or (base == 0 and exp <= 0):
            raise _NotPlain
        n = int(exp)
        size = max(base.numerator.bit_length(), base.denominator.bit_length())
        if base not in (0, 1, -1) and (size - 1) * abs(n) > MAX_BITS:
            raise _NotPlain
        return self.check(base ** n, base)

    def postfix(self) -> Fraction:
        v = self.primary()
        while self.peek() == "!":
            self.take()
            if self.peek() == "!" or v.denominator != 1 or not 0 <= v <= MAX_FACTORIAL:
                raise _NotPlain  # n!! is a double factorial to some readers, (n!)! to others
            v = self.check(Fraction(math.factorial(int(v))), v)
        return v

    def group(self) -> Fraction:
        self.take("{")
        v = self.expr()
        self.take("}")
        return v

    def primary(self) -> Fraction:
        tok = self.peek()
        if tok == "{":
            return self.group()
        if tok == "(":
            self.take()
            v = self.expr()
            self.take(")")
            return v
        if tok == "\\frac":
            self.take()
            num, den = self.group(), self.group()
            if den == 0:
                raise _NotPlain
            return self.check(num / den, num, den)
        if tok is not None and self.toks[self.i][0] == "num":
            return self.number(self.take())
        raise _NotPlain

    def number(self, tok: str) -> Fraction:
        if "_" in tok:  # 11111001110_8: digits in another base (2 to 36)
            digits, base = tok.split("_")
            base = int(base.strip("{}"))
            if not 2 <= base <= 36 or len(digits) > 2000:
                raise _NotPlain
            return Fraction(int(digits, base))  # ValueError for a digit >= base: not plain
        tok = tok.replace(",", "")
        if "e" in tok:  # 4.8e8: scientific notation (module docstring)
            mantissa, exponent = tok.split("e")
            if abs(int(exponent)) > 400:
                raise _NotPlain
            return self.number(mantissa) * Fraction(10) ** int(exponent)
        if "." in tok:
            whole, frac = tok.split(".")
            self.inexact = self.inexact or bool(frac.strip("0"))
            if len(tok) > 400:
                raise _NotPlain
            return Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"),
                            10 ** len(frac))
        if len(tok) > 10_000:
            raise _NotPlain
        return Fraction(int(tok))


def plain_number(s: str) -> tuple[Fraction, bool] | None:
    """(value, inexact) of the normalised answer ``s`` if it is a plain number, else None;
    ``inexact`` when a decimal with a nonzero fractional part occurs in it."""
    if not s or len(s) > 2000:
        return None
    if m := _MIXED.fullmatch(s):
        sign, whole, num, den = m.groups()
        if int(den) == 0 or int(num) >= int(den):
            return None
        v = int(whole) + Fraction(int(num), int(den))
        return (-v if sign else v), False
    try:
        parser = _Parser(_tokens(s))
        return parser.parse(), parser.inexact
    except (_NotPlain, ValueError, OverflowError, ZeroDivisionError, RecursionError):
        return None


def close(a: Fraction, b: Fraction, inexact: bool) -> bool:
    """Equal; or, when a decimal is involved, within :data:`REL_TOL` of the larger magnitude."""
    if a == b:
        return True
    return inexact and abs(a - b) <= REL_TOL * max(abs(a), abs(b))


def split_assignment(s: str) -> tuple[str | None, str]:
    """``x=5`` -> ``("x", "5")``; anything else (``x=y=5`` too) -> ``(None, s)``."""
    m = _ASSIGN.fullmatch(s)
    return (m.group(1), m.group(2)) if m and "=" not in m.group(2) else (None, s)


_DECIMAL = re.compile(r"-?(\d+)\.(\d+)")
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")
_THOUSANDS_GROUP = re.compile(r"-?[1-9]\d{0,2}(?:,\d{3})+")
MIN_ROUNDED_DIGITS = 4  # a rounded decimal needs this many significant digits to match


def rounds_to(decimal: str, value: Fraction) -> bool:
    """``decimal`` (a plain decimal literal) is ``value`` rounded to the decimal's own places,
    and it has at least :data:`MIN_ROUNDED_DIGITS` significant digits: ``2.6667`` for 8/3, never
    ``0.3`` for 1/3."""
    m = _DECIMAL.fullmatch(decimal)
    if m is None or len((m.group(1) + m.group(2)).lstrip("0")) < MIN_ROUNDED_DIGITS:
        return False
    scale = 10 ** len(m.group(2))
    return abs(Fraction(decimal) * scale - value * scale) <= Fraction(1, 2)


def decimal_comma(a: str, b: str) -> tuple[str, str]:
    """``("1,22", "1.22")`` -> ``("1.22", "1.22")``: a comma between digits is a decimal comma when
    the other side is a decimal and the comma cannot be a thousands separator (not three
    digits after it, or a first group starting with 0); else both unchanged."""
    for x, y, swap in ((a, b, False), (b, a, True)):
        if _DECIMAL_COMMA.fullmatch(x) and not _THOUSANDS_GROUP.fullmatch(x) \
                and _DECIMAL.fullmatch(y):
            x = x.replace(",", ".")
            return (y, x) if swap else (x, y)
    return a, b


def compare(pred: str, gold: str, pred_pct: bool = False, gold_pct: bool = False) -> bool | None:
    """True/False when both normalised answers are plain numbers, else None (not decided here).

    ``*_pct``: that side carried a percent mark (already removed from the string). The mark is
    optional: ``50\\%`` matches both ``50`` and ``0.5``.
    """
    lhs_p, pred = split_assignment(pred)
    lhs_g, gold = split_assignment(gold)
    if lhs_p is not None and lhs_g is not None and lhs_p != lhs_g:
        return None  # x=1 against y=1: math-verify's call
    p, g = plain_number(pred), plain_number(gold)
    if p is None or g is None:
        return None
    inexact = p[1] or g[1]
    if close(p[0], g[0], inexact) or rounds_to(pred, g[0]) or rounds_to(gold, p[0]):
        return True
    if pred_pct != gold_pct:
        if pred_pct:
            return close(p[0] / 100, g[0], inexact)
        return close(p[0], g[0] / 100, inexact)
    return False
