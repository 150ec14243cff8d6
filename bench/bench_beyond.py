"""How well pass@k beyond n is predicted (rlboundary/probes/beyond.py), on a probe that drew many
more samples than the prediction may use.

Take a stored probe with N samples per problem and its raw samples (``probe.save_samples``),
e.g. ``rlboundary probe n=2048 probe.limit=300 run_dir=runs/beyond_2048``. The problems are cut
into groups of ``--group`` and each problem's N samples into N / n disjoint blocks of n (the
probe's keyed sampling makes every block a probe of n samples of its own). For every (group,
block) the prediction of pass@k for k in (n, N] from that block alone is compared with pass@k
measured on the group with all N samples: the table gives, per k, the share of comparisons whose
95% band holds the measured value, the mean predicted and measured values and the mean band
width. The measured value is itself an estimate (of the group's true pass@k), so coverage of it
is slightly harder than coverage of the truth.

Run from the repository root: ``python bench/bench_beyond.py runs/beyond_2048 [--n 256]``.
"""

from __future__ import annotations

import argparse
import glob
import os

import numpy as np
import pandas as pd


def correct_matrix(run_dir: str, dataset: str, step: int) -> np.ndarray:
    """``(P, N)`` bool: sample j of problem i correct, from the stored raw samples."""
    path = os.path.join(run_dir, "probes", dataset, f"step_{step:08d}.samples.parquet")
    if not os.path.exists(path):
        found = glob.glob(os.path.join(run_dir, "probes", dataset, "*.samples.parquet"))
        raise SystemExit(f"no raw samples at {path} (found: {found}); probe with "
                         "probe.save_samples=true")
    df = pd.read_parquet(path, columns=["problem_id", "sample", "correct"])
    wide = df.pivot(index="problem_id", columns="sample", values="correct")
    return wide.to_numpy(dtype=bool)


def main() -> None:
    from rlboundary.probes.beyond import predict
    from rlboundary.probes.passk import pass_at_k_curve

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--dataset", default="arithmetic")
    ap.add_argument("--step", type=int, default=0)
    ap.add_argument("--n", type=int, default=256, help="samples the prediction may use")
    ap.add_argument("--group", type=int, default=50, help="problems per compared set")
    ap.add_argument("--n-boot", type=int, default=50)
    args = ap.parse_args()
    ok = correct_matrix(args.run_dir, args.dataset, args.step)
    P, N = ok.shape
    ks = [k for k in (512, 1024, 2048, 4096, 8192) if args.n < k <= N]
    rows = []
    for g in range(P // args.group):
        sub = ok[g * args.group:(g + 1) * args.group]
        measured = pass_at_k_curve(np.full(len(sub), N), sub.sum(1), ks)
        for b in range(N // args.n):
            c = sub[:, b * args.n:(b + 1) * args.n].sum(1)
            pred = predict(np.full(len(sub), args.n), c, ks, n_boot=args.n_boot, seed=b)
            for i, k in enumerate(ks):
                rows.append({"k": k, "measured": measured[i], "point": pred.point[i],
                             "width": pred.hi[i] - pred.lo[i],
                             "covered": pred.lo[i] <= measured[i] <= pred.hi[i]})
    df = pd.DataFrame(rows)
    table = df.groupby("k").agg(comparisons=("covered", "size"), coverage=("covered", "mean"),
                                predicted=("point", "mean"), measured=("measured", "mean"),
                                band_width=("width", "mean"))
    print(f"{args.run_dir} {args.dataset} step {args.step}: {P} problems x {N} samples; "
          f"predicted from n={args.n} per problem, groups of {args.group}, 95% bands")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
