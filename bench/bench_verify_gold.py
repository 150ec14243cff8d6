"""Does the verifier accept every gold answer as equal to itself, and to its `\\boxed{}` form?

Reads the gold answers of Omni-MATH-Rule (2,821) and MATH500 (500) from ../shared/data (or
--data), unwrapped as the loaders unwrap them, and checks, for each answer `a`:
`verify(a, a)`, `verify("\\boxed{a}", a)` and `compute_score("... \\boxed{a}.", a)` (the box
extracted from a response). Prints one row per dataset with the stages that decided, the
worker's start time and the answers that failed, if any.
Run from the repository root: `python bench/bench_verify_gold.py`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

try:
    from rlboundary.tasks import verify as V
except ImportError:  # run as a script from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rlboundary.tasks import verify as V
from rlboundary.tasks import verify_worker
from rlboundary.tasks.math_datasets import gold_answers

ROOT = Path(__file__).resolve().parents[1]
FILES = {"omni_math_rule": "omni_math_rule.jsonl", "math500": "math500.jsonl"}


def check(answers: list[str]) -> dict:
    stages: Counter = Counter()
    failed = {"self": [], "boxed": [], "response": []}
    t0 = time.perf_counter()
    for a in answers:
        for key, pred in (("self", a), ("boxed", f"\\boxed{{{a}}}")):
            found = V.verify_explain(pred, a)
            stages[found.stage] += 1
            if found.verdict is not V.Verdict.CORRECT:
                failed[key].append((a, found.stage, found.detail))
        if not V.compute_score("bench", f"So the answer is \\boxed{{{a}}}.", a)["acc"]:
            failed["response"].append((a, "", ""))
    return {"n": len(answers), "stages": stages, "failed": failed,
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    V.verify("x+1", "1+x")  # start this thread's worker
    print(f"worker start: {verify_worker.start_times()[-1]:.2f} s "
          f"(first math-verify answer after {time.perf_counter() - t0:.2f} s)\n")
    print(f"{'dataset':<16}{'answers':>8}{'self':>7}{'boxed':>7}{'response':>9}{'seconds':>9}"
          "  stages (self and boxed together)")
    failures = []
    for name, file in FILES.items():
        path = Path(args.data) / file
        if not path.exists():
            print(f"{name:<16} {path} is absent")
            continue
        r = check(gold_answers(str(path), name))
        ok = {k: r["n"] - len(v) for k, v in r["failed"].items()}
        stages = ", ".join(f"{k} {v}" for k, v in r["stages"].most_common())
        print(f"{name:<16}{r['n']:>8}{ok['self']:>7}{ok['boxed']:>7}{ok['response']:>9}"
              f"{r['seconds']:>9.2f}  {stages}")
        failures += [(name, k, *x) for k, v in r["failed"].items() for x in v]
    for name, key, answer, stage, detail in failures:
        print(f"  not equal ({name}, {key}): {answer!r} [{stage}] {detail}")
    print(f"\ncounters: {V.stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
