"""Time exact pass@k and its bootstrap bands at the study's scale (k up to 256).

821 problems x 256 samples, every k in 1..256, random correct counts (seeded). Best of 5 runs
per operation; the target is 0.5 s for the full per-problem pass@k matrix.
Run from the repository root: `python bench/bench_passk.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

try:
    from rlboundary import probes
except ImportError:  # run as a script from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rlboundary import probes
from rlboundary.fileio import write_text


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=821)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write {op: seconds} to this file")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    n = np.full(args.problems, args.n)
    c = rng.integers(0, args.n + 1, size=args.problems)
    c2 = rng.integers(0, args.n + 1, size=args.problems)
    ks = np.arange(1, args.n + 1)

    rows = [
        ("pass_at_k (P, K)", lambda: probes.pass_at_k(n, c, ks), 0.5),
        ("pass_at_k_curve", lambda: probes.pass_at_k_curve(n, c, ks), 0.5),
        (f"bootstrap_ci x{args.n_boot}",
         lambda: probes.bootstrap_ci(n, c, ks, n_boot=args.n_boot, seed=0), None),
        (f"paired_diff_ci x{args.n_boot}",
         lambda: probes.paired_diff_ci(n, c, n, c2, ks, n_boot=args.n_boot, seed=0), None),
    ]
    header = f"{'op':<24} {'problems':>8} {'n':>5} {'ks':>5} {'seconds':>9} {'target':>7}  result"
    print(header)
    print("-" * len(header))
    failed = False
    results = {}
    for name, fn, target in rows:
        fn()  # warm up (first-call allocations)
        sec = best_of(fn, args.repeats)
        results[name] = sec
        if target is None:
            verdict, tgt = "-", "-"
        else:
            ok = sec < target
            failed |= not ok
            verdict, tgt = ("PASS" if ok else "FAIL"), f"{target:.1f}s"
        print(f"{name:<24} {args.problems:>8} {args.n:>5} {ks.size:>5} {sec:>9.4f} {tgt:>7}  "
              f"{verdict}")
    if args.json:
        write_text(args.json, json.dumps({"problems": args.problems, "n": args.n,
                                          "seconds": results}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
