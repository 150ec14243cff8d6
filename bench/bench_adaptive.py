"""Benchmark: adaptive pass@k against the full probe, same model, same seed.

For the tiny base and one trained checkpoint, probes the held-out problems twice through the
CLI, once with n samples per problem and once with ``probe.adaptive=true``, and prints the
samples each drew, the largest gap between the two pass@k curves over k = 1..n (and where),
and the wall time of both. Sampling is keyed by problem id, so the adaptive probe's samples
are a prefix of the full probe's: the gap is what stopping costs, not two draws' noise (the
full curve's own standard error at k=1 is printed beside it for scale).

    python bench/bench_adaptive.py                        # tiny base + newest demo checkpoint
    python bench/bench_adaptive.py --checkpoint runs/arithmetic/checkpoints/global_step_100
    python bench/bench_adaptive.py --limit 120            # the first 120 of the 600 problems

Issue 13's target: within 0.5 points of the full curve at every k, with at most 50% of its
samples. The checkpoint defaults to the newest under runs/arithmetic/checkpoints (``make
demo`` writes it); without one the bench measures the tiny base only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlboundary.fileio import write_text


def newest_checkpoint(root: str = "runs/arithmetic/checkpoints") -> str | None:
    found = [(int(m.group(1)), p) for p in glob.glob(os.path.join(root, "global_step_*"))
             if (m := re.search(r"global_step_(\d+)$", p))]
    return max(found)[1] if found else None


def fresh_cache(tmp: str) -> str:
    """A cache with no stored probes (so both probes are timed, never "cached") that shares
    the user's built base models (no 2-minute rebuild)."""
    from rlboundary.commands import compose

    cache = os.path.join(tmp, "cache")
    os.makedirs(cache)
    built = os.path.join(compose([]).cache_dir, "base")
    if os.path.isdir(built):
        os.symlink(built, os.path.join(cache, "base"))
    return cache


def probe(run_dir: str, model: str | None, adaptive: bool, common: list[str]
          ) -> tuple[pd.DataFrame, float]:
    """One CLI probe; -> (the probed model's rows, wall seconds)."""
    from rlboundary.cli import main

    args = ["probe", *common, f"run_dir={run_dir}", f"probe.adaptive={str(adaptive).lower()}"]
    if model:
        args.append(f"model={model}")
    t0 = time.perf_counter()
    if main(args) != 0:
        raise SystemExit(f"probe failed: {' '.join(args)}")
    seconds = time.perf_counter() - t0
    files = sorted(glob.glob(os.path.join(run_dir, "probes", "*", "step_*[0-9].parquet")))
    return pd.read_parquet(files[-1]), seconds


def compare(full: pd.DataFrame, ad: pd.DataFrame, n: int) -> dict:
    from rlboundary import probes

    ks = np.arange(1, n + 1)
    a = probes.pass_at_k_curve(ad["n"], ad["c"], ks, ad["n_target"])
    f = probes.pass_at_k_curve(full["n"], full["c"], ks)
    gap = np.abs(a - f)
    i = int(np.argmax(gap))
    p1 = full["c"] / full["n"]
    return {"problems": len(full), "samples_full": int(full["n"].sum()),
            "samples_adaptive": int(ad["n"].sum()),
            "share": float(ad["n"].sum() / full["n"].sum()),
            "max_gap_pt": float(100 * gap[i]), "at_k": int(ks[i]),
            "gap1_pt": float(100 * (a[0] - f[0])), "gapn_pt": float(100 * (a[-1] - f[-1])),
            "se1_pt": float(100 * p1.std(ddof=1) / np.sqrt(len(p1))),
            "pass1": float(f[0]), "passn": float(f[-1])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=newest_checkpoint())
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--limit", type=int, default=None,
                    help="probe the first this many held-out problems (probe.limit)")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    common = ["progress=false", f"n={a.n}"]
    if a.limit:
        common.append(f"probe.limit={a.limit}")
    models = [("tiny base", None)] + ([("checkpoint", a.checkpoint)] if a.checkpoint else [])
    if not a.checkpoint:
        print("no trained checkpoint (run `make demo` or pass --checkpoint): tiny base only")
    out = []
    with tempfile.TemporaryDirectory(prefix="rlb-bench-adaptive-") as tmp:
        common.append(f"cache_dir={fresh_cache(tmp)}")
        for label, model in models:
            rows = {}
            for mode in ("full", "adaptive"):
                rows[mode] = probe(f"{tmp}/{label.replace(' ', '_')}-{mode}", model,
                                   mode == "adaptive", common)
            r = compare(rows["full"][0], rows["adaptive"][0], a.n)
            r.update(model=label, full_s=rows["full"][1], adaptive_s=rows["adaptive"][1])
            out.append(r)
    print(f"\nadaptive vs full pass@k, n={a.n}, same seed (adaptive samples are a prefix of "
          f"the full probe's)")
    head = (f"{'model':<12}{'problems':>9}{'samples':>9}{'adaptive':>10}{'share':>7}"
            f"{'max gap':>9}{'at k':>6}{'gap@1':>7}{f'gap@{a.n}':>9}{'SE@1':>6}"
            f"{'full s':>8}{'adapt s':>9}")
    print(head)
    for r in out:
        print(f"{r['model']:<12}{r['problems']:>9}{r['samples_full']:>9}"
              f"{r['samples_adaptive']:>10}{r['share']:>7.0%}{r['max_gap_pt']:>8.2f}p"
              f"{r['at_k']:>6}{r['gap1_pt']:>+7.2f}{r['gapn_pt']:>+9.2f}{r['se1_pt']:>6.2f}"
              f"{r['full_s']:>8.1f}{r['adaptive_s']:>9.1f}")
    print("gaps and SE in points of pass@k (p); target: max gap <= 0.5 p at share <= 50%")
    if a.json:
        write_text(a.json, json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
