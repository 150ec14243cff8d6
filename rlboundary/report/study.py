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

import pandas as pd

from rlboundary import probes
from rlboundary.report.load import align, load_run, ppl_pooled, ppl_responses


def _band(v: float, lo: float, hi: float, signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def study_table(run_dir: str, dataset: str, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per probed step (base = step 0) of ``dataset`` in ``run_dir``; strings ready to
    print. Raises ``FileNotFoundError`` when the run has no probe of the base model."""
    data = load_run(run_dir)
    steps = data.steps(dataset) if dataset in data.datasets else []
    if 0 not in steps:
        raise FileNotFoundError(f"{run_dir}: no base-model probe (step 0) for {dataset}")
    base = data.table(dataset, 0)
    k = int(min(data.table(dataset, s)["n"].min() for s in steps))
    rows = []
    for step in steps:
        b, cur = align(base, data.table(dataset, step))
        n, c, bn, bc = cur["n"], cur["c"], b["n"], b["c"]
        row = {"step": "base" if step == 0 else str(step)}
        for kk in (1, k):
            lo, hi = probes.bootstrap_ci(n, c, kk, n_boot=n_boot, seed=seed)
            mean = probes.pass_at_k_curve(n, c, kk)[0]
            row[f"pass@{kk}"] = _band(mean, lo[0], hi[0])
            if step:
                d, dlo, dhi = probes.paired_diff_ci(n, c, bn, bc, kk, n_boot=n_boot, seed=seed)
                row[f"diff@{kk}"] = _band(d[0], dlo[0], dhi[0], signed=True)
            else:
                row[f"diff@{kk}"] = ""
        mean, (median,) = ppl_responses(cur)
        if mean == mean:  # per-response values (the study's); older tables: pooled only
            row["ppl_base mean"], row["ppl_base median"] = f"{mean:.3f}", f"{median:.3f}"
        else:
            row["ppl_base mean"], row["ppl_base median"] = "-", "-"
        row["ppl pooled"] = f"{ppl_pooled(cur):.3f}"
        tok = (cur["mean_len"] * cur["n"]).to_numpy(float)
        row["entropy"] = f"{probes.weighted_mean(cur['entropy'].to_numpy(float), tok):.3f}"
        cov = probes.coverage(bn, bc, n, c)
        for key, label in (("both", "both"), ("base_only", "base only"),
                           ("policy_only", "RL only"), ("neither", "neither")):
            row[label] = int(cov[f"n_{key}"])
        rows.append(row)
    order = ["step", "pass@1", "diff@1", f"pass@{k}", f"diff@{k}", "ppl_base mean",
             "ppl_base median", "ppl pooled", "entropy",
             "both", "base only", "RL only", "neither"]
    return pd.DataFrame(rows)[order]
