"""The study's table for one run: per checkpoint, pass@1 and pass@k_max with 95% bands over
problems (Student-t, see ``probes.passk``), their paired differences from the base model, base-model perplexity (the study's, per
response: mean and median over the checkpoint's responses; and the token-pooled value),
entropy and the solvability ledger. `rlboundary demo` prints it; every number is recomputed from the parquet
tables with `rlboundary.probes`, so it agrees with the report.

The paired band is a t-interval over the per-problem differences checkpoint - base on the
same problems (arXiv 2504.13837 compares the same problems), so problem difficulty cancels and a
few problems lost at k=256 can be told from noise.
"""

from __future__ import annotations

import math

import pandas as pd

from rlboundary import probes
from rlboundary.report.load import (
    align,
    k_grid,
    k_max,
    load_run,
    n_target,
    ppl_pooled,
    ppl_responses,
)

LEDGER_LABELS = {"both": "both", "base_only": "base only", "policy_only": "RL only",
                 "neither": "neither"}


def _band(v: float, lo: float, hi: float, signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def versus_base(base: pd.DataFrame, cur: pd.DataFrame, k: int, n_boot: int = 2000,
                seed: int = 0) -> dict[str, float]:
    """One checkpoint against the base model on their shared problems, as numbers.

    ``base``, ``cur``: probe tables (one row per problem). Returns pass@1 and pass@k with
    their 95% bands (``pass@1``, ``pass@1_lo``, ``pass@1_hi``, ...), the paired differences
    checkpoint - base (``diff@1``, ``diff@1_lo``, ...), ``delta_se`` (base pass@k - this
    pass@1), ``crossover_k`` (NaN: none up to k), ``ppl_base`` (per-response mean, the study's),
    ``ppl_base_median``, ``ppl_pooled``, ``entropy`` (nats per token) and the ledger counts
    ``both``, ``base_only``, ``policy_only``, ``neither``.
    """
    b, cur = align(base, cur)
    n, c, bn, bc = (x.to_numpy(int) for x in (cur["n"], cur["c"], b["n"], b["c"]))
    nt, bnt = n_target(cur), n_target(b)
    row: dict[str, float] = {}
    grid = k_grid(k)   # 1, 2, 4, ..., k: the paired differences at every k, once
    d, dlo, dhi = probes.paired_diff_ci(n, c, bn, bc, grid, n_boot=n_boot, seed=seed,
                                        n_target_a=nt, n_target_b=bnt)
    for kk, i in ((1, 0), (k, -1)):
        lo, hi = probes.bootstrap_ci(n, c, kk, n_boot=n_boot, seed=seed, n_target=nt)
        row[f"pass@{kk}"] = float(probes.pass_at_k_curve(n, c, kk, nt)[0])
        row[f"pass@{kk}_lo"], row[f"pass@{kk}_hi"] = float(lo[0]), float(hi[0])
        row[f"diff@{kk}"], row[f"diff@{kk}_lo"], row[f"diff@{kk}_hi"] = (
            float(d[i]), float(dlo[i]), float(dhi[i]))
    row["vs_base"] = boundary_verdict(grid, dlo, dhi)
    row["diff_lo_min"], row["diff_hi_max"] = float(dlo.min()), float(dhi.max())
    row["delta_se"] = probes.delta_se(bn, bc, n, c, k, base_target=bnt, pol_target=nt).value
    cross = probes.crossover_k(bn, bc, n, c, base_target=bnt, pol_target=nt)
    row["crossover_k"] = float("nan") if cross is None else float(cross)
    mean, (median,) = ppl_responses(cur)
    row["ppl_base"], row["ppl_base_median"], row["ppl_pooled"] = mean, median, ppl_pooled(cur)
    tok = (cur["mean_len"] * cur["n"]).to_numpy(float)
    row["entropy"] = probes.weighted_mean(cur["entropy"].to_numpy(float), tok)
    cov = probes.coverage(bn, bc, n, c)
    row.update({key: int(cov[f"n_{key}"]) for key in probes.CATEGORIES})
    return row


def boundary_verdict(ks, lo, hi) -> str:
    """Where a checkpoint's pass@k lies against the base's, from the paired 95% bands of
    checkpoint - base at each k of ``ks`` (ascending; ``lo``, ``hi`` the same length): "above at
    every k" when every lower bound is above zero (the study's Figure 7, distillation), "below
    at every k" when every upper bound is below zero, else the runs of k where the band clears
    zero, e.g. "above for k 1-8, below for k 64-256", or "within the band at every k"."""
    sign = ["+" if lo_ > 0 else "-" if hi_ < 0 else "0" for lo_, hi_ in zip(lo, hi)]
    if not sign:
        return ""
    if set(sign) == {"+"} or set(sign) == {"-"}:
        return f"{'above' if sign[0] == '+' else 'below'} at every k <= {int(ks[-1])}"
    runs, start = [], 0
    for i in range(1, len(sign) + 1):
        if i == len(sign) or sign[i] != sign[start]:
            if sign[start] != "0":
                span = (f"k {int(ks[start])}" if i - 1 == start else
                        f"k {int(ks[start])}-{int(ks[i - 1])}")
                runs.append(f"{'above' if sign[start] == '+' else 'below'} for {span}")
            start = i
    return ", ".join(runs) or "within the band at every k"


def _cell(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.3f}"


def study_table(run_dir: str, dataset: str, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per probed step (base = step 0) of ``dataset`` in ``run_dir``; strings ready to
    print. Raises ``FileNotFoundError`` when the run has no probe of the base model."""
    data = load_run(run_dir)
    steps = data.steps(dataset) if dataset in data.datasets else []
    if 0 not in steps:
        raise FileNotFoundError(f"{run_dir}: no base-model probe (step 0) for {dataset}")
    base = data.table(dataset, 0)
    k = min(k_max(data.table(dataset, s)) for s in steps)
    rows = []
    for step in steps:
        v = versus_base(base, data.table(dataset, step), k, n_boot=n_boot, seed=seed)
        row = {"step": "base" if step == 0 else str(step)}
        for kk in (1, k):
            row[f"pass@{kk}"] = _band(v[f"pass@{kk}"], v[f"pass@{kk}_lo"], v[f"pass@{kk}_hi"])
            row[f"diff@{kk}"] = _band(v[f"diff@{kk}"], v[f"diff@{kk}_lo"], v[f"diff@{kk}_hi"],
                                      signed=True) if step else ""
        row["ppl_base mean"], row["ppl_base median"] = (_cell(v["ppl_base"]),
                                                        _cell(v["ppl_base_median"]))
        row["ppl pooled"], row["entropy"] = _cell(v["ppl_pooled"]), _cell(v["entropy"])
        for key, label in LEDGER_LABELS.items():
            row[label] = v[key]
        rows.append(row)
    order = ["step", "pass@1", "diff@1", f"pass@{k}", f"diff@{k}", "ppl_base mean",
             "ppl_base median", "ppl pooled", "entropy", *LEDGER_LABELS.values()]
    return pd.DataFrame(rows)[order]
