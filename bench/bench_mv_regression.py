"""How often does the verifier agree with Math-Verify's own regression cases?

Reads the parametrized ``(gold, pred, expected)`` cases of a Math-Verify checkout's
``tests/test_all.py`` (``--tests``; nothing of it is copied here) with :mod:`ast`, keeps the
cases whose gold and prediction are each one short expression (no prose, no line breaks, at most
80 characters once ``$..$``/``\\(..\\)``/``\\[..\\]`` are stripped, no test arguments beyond
``precision``: our verifier compares extracted answers, Math-Verify's tests also test its
extraction from free text) and prints the agreement of ``verify(pred, gold)`` with ``expected``,
then every disagreement with the stage that decided it.

    python bench/bench_mv_regression.py --tests PATH/TO/Math-Verify/tests/test_all.py
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

try:
    from rlboundary.tasks import verify as V
except ImportError:  # run as a script from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rlboundary.tasks import verify as V

MAX_LEN = 80
_DELIMS = re.compile(r"^\s*(?:\$\$?|\\\(|\\\[)\s*|\s*(?:\$\$?|\\\)|\\\])\s*\.?\s*$")
_PROSE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}")
_COMMANDS = re.compile(r"\\text\{[^}]*\}|\\[A-Za-z]+")


def parametrized_cases(path: str) -> list[tuple[str, str, str, object, dict]]:
    """(test name, gold, pred, expected, other arguments) of every parametrized case."""
    out = []
    for fn in ast.parse(Path(path).read_text()).body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        for dec in fn.decorator_list:
            if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                continue
            names = ast.literal_eval(dec.args[0])
            names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
            try:
                rows = ast.literal_eval(dec.args[1])
            except ValueError:  # built from calls: not plain data
                continue
            for row in rows:
                case = dict(zip(names, row))
                if {"gold", "pred", "expected"} <= case.keys():
                    extra = {k: v for k, v in case.items() if k not in ("gold", "pred", "expected")}
                    out.append((fn.name, case["gold"], case["pred"], case["expected"], extra))
    return out


def short(case: tuple) -> tuple[str, str] | None:
    """(gold, pred) stripped of math delimiters when both are one short expression, else None."""
    _, gold, pred, _, extra = case
    g, p = _DELIMS.sub("", gold), _DELIMS.sub("", pred)
    if set(extra) - {"precision"} or "\n" in gold + pred or max(len(g), len(p)) > MAX_LEN:
        return None
    if any(d in g + p for d in ("$", "\\(", "\\[")) or _PROSE.search(_COMMANDS.sub("", g + " " + p)):
        return None
    return g, p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", required=True, help="Math-Verify's tests/test_all.py")
    args = ap.parse_args(argv)
    cases = parametrized_cases(args.tests)
    kept = [(c[0], *s, bool(c[3])) for c in cases if (s := short(c)) is not None]
    disagree = []
    for name, gold, pred, expected in kept:
        found = V.verify_explain(pred, gold)
        if (found.verdict is V.Verdict.CORRECT) != expected:
            disagree.append((name, gold, pred, expected, found.stage, found.detail))
    agree = len(kept) - len(disagree)
    print(f"{len(cases)} parametrized cases, {len(kept)} of one short expression each: "
          f"agreement {agree}/{len(kept)} = {agree / max(len(kept), 1):.1%}")
    for name, gold, pred, expected, stage, detail in disagree:
        print(f"  {name}: verify({pred!r}, {gold!r}) -> {not expected}, Math-Verify's test "
              f"expects {expected} [{stage}] {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
