"""One key per answer class, for counting distinct answers (probes/diversity.py): answers the
verifier's cheap stages call equal share a key, a tuple and a number never do. No sympy, no
worker: a key per sample of a probe must be cheap.
"""

from __future__ import annotations

from rlboundary.tasks import verify_numbers, verify_values
from rlboundary.tasks.verify_extract import normalize, unwrap


def answer_key(pred: str | None) -> str | None:
    """The class of an extracted answer for counting distinct answers (probes/diversity.py);
    None for no answer. Cheap: no sympy, no worker.

    Two answers the cheap stages call equal get one key: a plain number is ``#<fraction>``
    ("0.5", "1/2", "\\frac{1}{2}", "50\\%", "x=0.5", "5e-1" are one answer); a unit written as
    text is dropped (a bare number matches it); an inequality in one variable is its interval;
    a list of values is the set of its items' keys, a tuple or interval its items' keys in
    order within its brackets (so "(1,234)" is no number). Else the normalised string. Three
    rules of the verifier are not transitive and no key can follow them: the optional percent
    mark (``50\\%`` matches ``50`` and ``0.5``; the key reads it as 0.5), a bare list standing
    for a ``(..)`` tuple (``1, 2`` matches ``(1, 2)`` and ``2, 1``; the key reads it as a set)
    and a decimal's relative tolerance (``0.333333`` matches ``\\frac13``; keys are exact).
    Answers equal only to math-verify (``x+1``, ``1+x``) keep their own keys."""
    if not pred:
        return None
    value, _unit = verify_values.split_unit(unwrap(str(pred)))
    s = normalize(value)
    return _key(s) if s else None


def _key(s: str, depth: int = 0) -> str:
    """:func:`answer_key` of a normalised, non-empty answer."""
    s = verify_values.as_interval(s) or s
    body, pct = verify_values.split_percent(s)
    _, value = verify_numbers.split_assignment(normalize(body) if pct else s)
    number = verify_numbers.plain_number(value)
    if number is not None:
        return f"#{number[0] / 100 if pct else number[0]}"
    shape = verify_values.shape(s)
    if depth >= 2 or shape.kind == "single":
        return s
    keys = [_key(item, depth + 1) for item in shape.items]
    if shape.kind == "set":
        return "{" + ",".join(sorted(set(keys))) + "}"
    return shape.brackets[:1] + ",".join(keys) + shape.brackets[1:]

