"""Reward holes over every gold: the wrong answers the verifier accepts, the right ones it rejects.

For each gold answer of Omni-MATH-Rule (2,821) and MATH500 (500) in ../shared/data (or --data):

- wrong side, answers wrong by construction (from the gold's math where it is prose with inline
  math): ``number`` (each number written in the gold),
  ``constant`` (0, 1, 2), ``changed`` (the gold with its first number plus one), ``term`` (the
  first term of a sum of two or more), ``no-vars`` (the gold with its one-letter variables set to
  1). A candidate whose value equals the gold's (the gold's value read by this script with
  math-verify's parser, apart from the verifier: ``\\frac{4}{2}`` against 2) is not wrong and
  is left out.
- right side, the gold's own rewrites: ``self``, ``boxed`` (``\\boxed{gold}``), ``response``
  (the box extracted from a sentence), ``frac`` (``\\frac`` and ``\\dfrac`` swapped), ``commas``
  (a space after each comma added or taken away), ``value`` (the value of a gold written as
  ``x = 5``, ``N \\equiv 672 \\pmod{1000}`` or prose with inline math: ``5``, ``672``).

Prints one table per side with a column per kind and dataset, then every accepted wrong answer
and every rejected right one with the stage that decided it. Run from the repository root:
``python bench/bench_reward_holes.py [--workers 2] [--limit N]``; a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

try:
    from rlboundary.tasks import verify as V
except ImportError:  # run as a script from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rlboundary.tasks import verify as V
from rlboundary.tasks.math_datasets import gold_answers

ROOT = Path(__file__).resolve().parents[1]
FILES = {"omni_math_rule": "omni_math_rule.jsonl", "math500": "math500.jsonl"}
WRONG_KINDS = ("number", "constant", "changed", "term", "no-vars")
RIGHT_KINDS = ("self", "boxed", "response", "frac", "commas", "value")

_NUMBER = re.compile(r"(?<![A-Za-z_\\^])\d+(?:\.\d+)?")
_NAMED_VALUE = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*(?:=|\\equiv)[^=]*$")  # x = 5, N \equiv 6
_LETTER = re.compile(r"(?<![A-Za-z\\])[a-df-hj-zA-Z](?![A-Za-z])")  # not e, i: constants


def _outside_text(s: str, pattern: re.Pattern) -> list[re.Match]:
    """Matches of ``pattern`` outside ``\\text{}``-like groups."""
    from rlboundary.tasks.verify_gold import TEXT_GROUP

    spans = [(m.start(), m.end()) for m in TEXT_GROUP.finditer(s)]
    return [m for m in pattern.finditer(s) if not any(a <= m.start() < b for a, b in spans)]


def _top_level_terms(s: str) -> list[str]:
    """``a + b - c`` -> ``["a", "+ b", "- c"]``, splitting at depth 0 only (no leading sign)."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in "+-" and depth == 0 and i > start and s[i - 1] not in "^_{(,=<>\\":
            terms.append(s[start:i].strip())
            start = i
    terms.append(s[start:].strip())
    return [t for t in terms if t]


def _value(s: str):
    """The numeric value math-verify's parser gives ``s`` (None when it is no number); used
    only to leave out candidates that are not wrong."""
    from math_verify import parse

    try:
        parsed = parse("$" + s + "$", parsing_timeout=2)
        first = parsed[0] if parsed else None
        if getattr(first, "is_Equality", False) and getattr(first.lhs, "is_Symbol", False):
            first = first.rhs  # x = 5: the verifier reads it as 5, on purpose
        if getattr(first, "is_number", False) and not first.free_symbols:
            value = complex(first.evalf(20))
            return value if abs(value) < 1e300 else None
    except Exception:  # noqa: BLE001  (not a number to this reader: no value)
        return None
    return None


def _same(a, b) -> bool:
    try:
        return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    except OverflowError:
        return False


def wrong_answers(gold: str) -> list[tuple[str, str]]:
    """(kind, answer) pairs that are wrong for ``gold`` by construction (module docstring); a
    gold written as prose with inline math is read as its math (``answer_part``)."""
    from rlboundary.tasks.verify_extract import brace_fracs
    from rlboundary.tasks.verify_gold import answer_part, value_part, written_variables

    gold = answer_part(gold)
    # the gold's own value, read apart from the verifier; none when it writes variables
    value = value_part(gold)
    gold_value = None if written_variables(value) else _value(brace_fracs(value))
    out: list[tuple[str, str]] = []
    numbers = [m.group() for m in _outside_text(gold, _NUMBER)]
    for n in dict.fromkeys(numbers):
        out.append(("number", n))
    for c in ("0", "1", "2"):
        out.append(("constant", c))
    first = _outside_text(gold, _NUMBER)[:1]
    if first:
        m = first[0]
        bumped = str(int(m.group()) + 1) if "." not in m.group() else \
            f"{float(m.group()) + 1:.{len(m.group().split('.')[1])}f}"
        out.append(("changed", gold[:m.start()] + bumped + gold[m.end():]))
    terms = _top_level_terms(gold)
    if len(terms) >= 2 and "," not in gold and "=" not in gold:
        out.append(("term", terms[0]))
    letters = _outside_text(gold, _LETTER)
    if letters:
        s, prev = [], 0
        for m in letters:
            s.append(gold[prev:m.start()] + "(1)")
            prev = m.end()
        out.append(("no-vars", "".join(s) + gold[prev:]))
    keep = []
    for kind, answer in out:
        if V.normalize(answer) == V.normalize(gold):
            continue
        if gold_value is not None and _same(_value(answer), gold_value):
            continue  # equal in value: not a wrong answer
        keep.append((kind, answer))
    return keep


def right_answers(gold: str) -> list[tuple[str, str]]:
    """(kind, answer) pairs equal to ``gold`` by construction (module docstring)."""
    out = [("self", gold), ("boxed", f"\\boxed{{{gold}}}"), ("response", None)]
    swapped = gold.replace("\\dfrac", "\\FRAC").replace("\\frac", "\\dfrac").replace(
        "\\FRAC", "\\frac")
    if swapped != gold:
        out.append(("frac", swapped))
    spaced = re.sub(r",(?=\S)", ", ", gold) if ", " not in gold else gold.replace(", ", ",")
    if spaced != gold and "{,}" not in gold and not re.search(r"\d,\d{3}(?!\d)", gold):
        out.append(("commas", spaced))
    from rlboundary.tasks.verify_gold import answer_part, value_part

    math = answer_part(gold)
    value = value_part(math)
    if value and value != gold and (math != gold or _NAMED_VALUE.match(math)):
        out.append(("value", value))
    return out


def _check(job: tuple[str, str, str | None, bool]) -> tuple:
    kind, gold, answer, _ = job
    if kind == "response":
        score = V.compute_score("bench", f"So the answer is \\boxed{{{gold}}}.", gold)
        return job, score["acc"], "compute_score", ""
    found = V.verify_explain(answer, gold)
    return job, found.verdict is V.Verdict.CORRECT, found.stage, found.detail


def candidates(golds: list[str]) -> list[tuple[str, str, str | None, bool]]:
    """(kind, gold, answer, whether it is right) for every gold."""
    jobs = [(k, g, a, False) for g in golds for k, a in wrong_answers(g)]
    return jobs + [(k, g, a, True) for g in golds for k, a in right_answers(g)]


def audit(jobs: list[tuple[str, str, str | None, bool]], workers: int) -> dict:
    tried, failed, stages = Counter(), [], Counter()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for (kind, gold, answer, want), ok, stage, detail in pool.map(_check, jobs, chunksize=64):
            tried[kind] += 1
            stages[stage] += 1
            if ok != want:
                failed.append((kind, gold, answer, stage, detail))
    return {"golds": len({j[1] for j in jobs}), "tried": tried, "failed": failed,
            "stages": stages, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--workers", type=int, default=2, help="threads (one verifier worker each)")
    ap.add_argument("--limit", type=int, default=None, help="first N golds of each dataset")
    ap.add_argument("--save", help="also write the candidate answers to this JSON file")
    ap.add_argument("--candidates", help="audit the candidates of a --save file instead (e.g. "
                    "an older verifier: PYTHONPATH=OLD_CHECKOUT python bench/... --candidates F)")
    args = ap.parse_args(argv)
    if args.candidates:
        with open(args.candidates) as f:
            jobs_of = {name: [tuple(j) for j in jobs] for name, jobs in json.load(f).items()}
    else:
        jobs_of = {}
        for name, file in FILES.items():
            path = Path(args.data) / file
            if not path.exists():
                print(f"{name}: {path} is absent")
                continue
            jobs_of[name] = candidates(gold_answers(str(path), name)[:args.limit])
    if args.save:
        Path(args.save).write_text(json.dumps(jobs_of))
    results = {}
    for name, jobs in jobs_of.items():
        results[name] = audit(jobs, args.workers)
        print(f"{name}: {results[name]['golds']} distinct golds, {len(jobs)} answers in "
              f"{results[name]['seconds']:.0f} s", flush=True)
    for side, kinds, label in (("wrong", WRONG_KINDS, "accepted wrong / tried"),
                               ("right", RIGHT_KINDS, "rejected right / tried")):
        print(f"\n{label}")
        print(f"{'dataset':<16}" + "".join(f"{k:>14}" for k in kinds) + f"{'all':>14}")
        for name, r in results.items():
            bad = Counter(f[0] for f in r["failed"])
            cells = [f"{bad[k]}/{r['tried'][k]}" for k in kinds]
            total = f"{sum(bad[k] for k in kinds)}/{sum(r['tried'][k] for k in kinds)}"
            print(f"{name:<16}" + "".join(f"{c:>14}" for c in cells) + f"{total:>14}")
    for name, r in results.items():
        for kind, gold, answer, stage, detail in r["failed"]:
            what = "accepted" if kind in WRONG_KINDS else "rejected"
            print(f"  {what} ({name}, {kind}): {answer!r} for gold {gold!r} [{stage}] {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
