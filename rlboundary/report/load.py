"""Read a finished (or running) run directory into tables the report and W&B logger share.

The per-problem parquet files are the source of truth: every number the report shows is
recomputed from them with `rlboundary.probes`, so a figure and the summary table can never
disagree. `metrics.jsonl` is read too (the trainer's own view), and its values fill cells the
parquet cannot give (e.g. a metric only the trainer computed).
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from rlboundary import probes
from rlboundary.results.metrics import load_metrics
from rlboundary.results.provenance import flat, settings_line
from rlboundary.results.store import DamagedResult, check_rows, read_parquet, read_provenance

STEP_RE = re.compile(r"step_(\d+)\.parquet$")

# Columns every probe table is expected to carry, with the value that means "not measured".
DEFAULTS: dict[str, object] = {
    "difficulty": math.nan,
    "c_valid": -1,
    "n_timeout": 0,
    "n_truncated": 0,
    "mean_len": math.nan,
    "entropy": math.nan,
    "nll_base_sum": math.nan,
    "n_tokens": 0,
    "ppl_base_mean": math.nan,
    "ppl_base_count": 0,
    **{k: math.nan for k in probes.summary_keys("ppl_base")},
}


def load_probes(run_dir: str | Path) -> pd.DataFrame:
    """Concatenate every RUN_DIR/probes/<dataset>/step_*.parquet into one long table.

    The step and dataset are taken from the path when the file lacks them, and columns a
    writer left out are filled with their "not measured" value so later code needs no guards.
    """
    root = Path(run_dir) / "probes"
    frames = []
    for path in sorted(root.glob("*/step_*.parquet")):
        m = STEP_RE.fullmatch(path.name)
        if m is None:  # raw samples (step_N.samples.parquet) sit beside the tables
            continue
        try:
            df = read_parquet(str(path))
        except DamagedResult as e:
            print(f"[rlboundary] warning: skipping damaged {path} ({e.why}); probe that step "
                  "again to report it", file=sys.stderr, flush=True)
            continue
        if "dataset" not in df.columns:
            df["dataset"] = path.parent.name
        if "step" not in df.columns:
            df["step"] = int(m.group(1))
        df = check_rows(df, str(path))  # BadRows names problem, dataset, step and file
        frames.append(df)
    if not frames:
        raise FileNotFoundError(f"no probe tables under {root}/<dataset>/step_*.parquet")
    df = pd.concat(frames, ignore_index=True)
    for col, val in DEFAULTS.items():
        if col not in df.columns:
            df[col] = val
    if "checkpoint" not in df.columns:
        df["checkpoint"] = np.where(df["step"] == 0, "base", "step_" + df["step"].astype(str))
    df["problem_id"] = df["problem_id"].astype(str)
    df["step"] = df["step"].astype(int)
    return df.sort_values(["dataset", "step", "problem_id"], ignore_index=True)


def load_settings(run_dir: str | Path) -> pd.DataFrame:
    """What each stored probe was produced with: one row per (dataset, step) with the columns
    of its provenance record flattened (n, sampling.temperature, model_sha, ...) and
    ``settings``, a short line of them; ``settings`` is "unrecorded" for older files."""
    rows = []
    for path in sorted((Path(run_dir) / "probes").glob("*/step_*.parquet")):
        m = STEP_RE.fullmatch(path.name)
        if m is None:
            continue
        try:
            prov = read_provenance(str(path))
        except DamagedResult:  # load_probes warns of it
            continue
        row = {"dataset": path.parent.name, "step": int(m.group(1))}
        if prov is None:
            row["settings"] = "unrecorded"
        else:
            row.update(flat(prov))
            row["settings"] = settings_line(prov)
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else ["dataset", "step", "settings"])


@dataclass
class RunData:
    """All probe rows plus the trainer's metrics for one run directory."""

    run_dir: Path
    problems: pd.DataFrame
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    settings: pd.DataFrame = field(default_factory=pd.DataFrame)
    cache: dict = field(default_factory=dict, repr=False)  # bootstrap curves are costly; reuse

    @property
    def datasets(self) -> list[str]:
        return sorted(self.problems["dataset"].unique())

    def steps(self, dataset: str) -> list[int]:
        return sorted(self.problems.loc[self.problems["dataset"] == dataset, "step"].unique())

    def table(self, dataset: str, step: int) -> pd.DataFrame:
        p = self.problems
        return p[(p["dataset"] == dataset) & (p["step"] == step)].reset_index(drop=True)

    def has_validity(self, dataset: str) -> bool:
        return bool((self.problems.loc[self.problems["dataset"] == dataset, "c_valid"] >= 0).any())


def load_run(run_dir: str | Path) -> RunData:
    run_dir = Path(run_dir)
    return RunData(run_dir, load_probes(run_dir), load_metrics(run_dir), load_settings(run_dir))


# ---------------------------------------------------------------- derived per-checkpoint numbers


def k_grid(n_min: int) -> list[int]:
    """Powers of two up to the smallest sample count, plus that count itself.

    pass@k is only defined for k <= n, so a dataset sampled n=50 times stops at k=50.
    """
    n_min = int(n_min)
    ks = [2**i for i in range(int(math.log2(max(n_min, 1))) + 1)]
    if ks[-1] != n_min:
        ks.append(n_min)
    return ks


def align(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Restrict two checkpoints' tables to their shared problems, in the same row order."""
    common = sorted(set(a["problem_id"]) & set(b["problem_id"]))
    a = a.set_index("problem_id").loc[common].reset_index()
    b = b.set_index("problem_id").loc[common].reset_index()
    return a, b


def ppl_per_problem(df: pd.DataFrame) -> np.ndarray:
    """Per-problem token-pooled base-model perplexity; NaN where no tokens were scored."""
    return probes.perplexity(df["nll_base_sum"].to_numpy(float), df["n_tokens"].to_numpy(float))[0]


def ppl_pooled(df: pd.DataFrame) -> float:
    """Token-pooled base perplexity exp(total NLL / total tokens) of a checkpoint's samples
    (long responses dominate it; the study's value is ppl_responses). NaN if unscored."""
    return probes.perplexity(df["nll_base_sum"].to_numpy(float), df["n_tokens"].to_numpy(float))[1]


ppl_overall = ppl_pooled  # the old name, kept for callers outside the report


def ppl_responses(df: pd.DataFrame, probs=(0.5,)) -> tuple[float, np.ndarray]:
    """The study's per-response base perplexity of a checkpoint's samples: (mean over
    responses, pooled quantiles at ``probs`` from the per-problem summaries). NaNs when the
    table has no per-response columns."""
    cnt = df["ppl_base_count"].to_numpy(float)
    mean = probes.weighted_mean(df["ppl_base_mean"].to_numpy(float), cnt)
    keys = probes.summary_keys("ppl_base")
    q = probes.mixture_quantiles(df[keys].to_numpy(float), cnt, list(probs))
    return mean, q


def n_target(df: pd.DataFrame) -> np.ndarray | None:
    """The rows' full sample counts (adaptive probes), None for tables without them."""
    return df["n_target"].to_numpy(int) if "n_target" in df.columns else None


def k_max(df: pd.DataFrame) -> int:
    """The largest k a probe table supports (probes.k_max: n_target when adaptive)."""
    return probes.k_max(df["n"].to_numpy(int), n_target(df))


def curve(df: pd.DataFrame, ks: list[int], *, valid: bool = False, n_boot: int = 1000,
          seed: int = 0) -> pd.DataFrame:
    """Mean pass@k over problems with a 95% band (probes.bootstrap_ci: Student-t over problems
    by default; NaN with one problem), one row per k.

    `valid=True` scores whole-trace validity (c_valid) instead of the final answer; rows
    without a trace check (c_valid < 0) are dropped.
    """
    col = "c_valid" if valid else "c"
    df = df[df[col] >= 0] if valid else df
    n, c, nt = df["n"].to_numpy(int), df[col].to_numpy(int), n_target(df)
    mean = np.asarray(probes.pass_at_k_curve(n, c, ks, nt), float)
    lo, hi = probes.bootstrap_ci(n, c, ks, n_boot=n_boot, seed=seed, n_target=nt)
    return pd.DataFrame({"k": ks, "pass": mean, "lo": np.asarray(lo, float),
                         "hi": np.asarray(hi, float)})


def curves(data: RunData, dataset: str, *, valid: bool = False, n_boot: int = 1000
           ) -> dict[int, pd.DataFrame]:
    """pass@k curve per checkpoint on one shared k grid (so curves are comparable).

    Cached on `data`: the figures and the summary table all read the same bootstrap draw.
    """
    key = ("curves", dataset, valid, n_boot)
    if key not in data.cache:
        ks = k_grid(k_max(data.problems[data.problems["dataset"] == dataset]))
        data.cache[key] = {s: curve(data.table(dataset, s), ks, valid=valid, n_boot=n_boot)
                           for s in data.steps(dataset)}
    return data.cache[key]


# ---------------------------------------------------------------- summary table


#: Registered probes the summary runs: the trainer's own code, so numbers match metrics.jsonl.
SUMMARY_PROBES = ("pass_at_k", "entropy", "ppl_base", "coverage", "delta_se", "crossover_k",
                  "cover", "answers")


def _checkpoint_row(data: RunData, dataset: str, step: int, prev: int | None) -> dict:
    """All scalars for one checkpoint: registered probes plus report-only counts.

    Report-only keys: coverage/n_<category> (problem counts, the fractions are coverage/<cat>)
    and transitions/gained, transitions/lost (vs the previous checkpoint, whereas the probe
    suite's gained/lost are vs the base model).
    """
    cur = data.table(dataset, step)
    base = data.table(dataset, 0) if step != 0 and 0 in data.steps(dataset) else None
    if base is not None:
        base, cur = align(base, cur)
    row: dict = {"step": step, "dataset": dataset, "n_problems": len(cur),
                 "k_max": k_max(cur)}
    row.update(probes.run_probes(list(SUMMARY_PROBES), cur, base))
    if base is not None:
        cov = probes.coverage(base["n"].to_numpy(int), base["c"].to_numpy(int),
                              cur["n"].to_numpy(int), cur["c"].to_numpy(int))
        row.update({f"coverage/n_{k}": float(cov[f"n_{k}"]) for k in probes.CATEGORIES})
    if prev is not None:
        a, b = data.table(dataset, prev), data.table(dataset, step)
        tr = probes.transitions_shared(a["problem_id"].to_numpy(), a["c"].to_numpy(),
                                       b["problem_id"].to_numpy(), b["c"].to_numpy())
        row.update({"transitions/gained": float(tr["gained"]),
                    "transitions/lost": float(tr["lost"]),
                    "transitions/n_left_out": float(tr["n_left_out"])})
    st = data.settings
    if not st.empty:
        hit = st[(st["dataset"] == dataset) & (st["step"] == step)]
        row["settings"] = hit["settings"].iloc[0] if len(hit) else "unrecorded"
    return row


def summary(data: RunData, dataset: str) -> pd.DataFrame:
    """One row per checkpoint, columns named as the CONTRACTS.md scalar metrics.

    Recomputed from the parquet tables with the registered probes; metrics only the trainer
    logged (in metrics.jsonl) are merged in as extra columns / fill for missing cells.
    """
    key = ("summary", dataset)
    if key not in data.cache:
        steps = data.steps(dataset)
        rows = [_checkpoint_row(data, dataset, s, steps[i - 1] if i else None)
                for i, s in enumerate(steps)]
        df = pd.DataFrame(rows)
        df["k_max"] = df["k_max"].min()  # one k grid per dataset, as in the figures
        _fill_from_curves(df, curves(data, dataset), "")
        if data.has_validity(dataset):  # the probe gives no band for validity; the figure does
            _fill_from_curves(df, curves(data, dataset, valid=True), "valid_")
        data.cache[key] = _fill_from_metrics(df, data.metrics, dataset)
    return data.cache[key].copy()


PRED_RE = re.compile(r"^pass@(\d+)_pred$")


def predicted_curves(data: RunData, dataset: str) -> dict[int, pd.DataFrame]:
    """pass@k predicted beyond the samples drawn (the ``pass_at_k_pred`` probe's
    ``pass@<k>_pred`` with ``_lo``/``_hi``, read from the summary): ``{step: DataFrame(k,
    pass, lo, hi)}``, empty when the run has none (probed before that probe existed)."""
    df = summary(data, dataset)
    ks = sorted(int(m.group(1)) for c in df.columns if (m := PRED_RE.match(c)))
    out = {}
    for _, row in df.iterrows():
        rows = [(k, row[f"pass@{k}_pred"], row.get(f"pass@{k}_pred_lo", math.nan),
                 row.get(f"pass@{k}_pred_hi", math.nan)) for k in ks
                if pd.notna(row[f"pass@{k}_pred"])]
        if rows:
            out[int(row["step"])] = pd.DataFrame(rows, columns=["k", "pass", "lo", "hi"])
    return out


def _fill_from_curves(df: pd.DataFrame, cur: dict[int, pd.DataFrame], prefix: str) -> None:
    """Fill gaps in <prefix>pass@<k>[_lo|_hi] from the figures' curves (same bootstrap).

    Gaps arise for validity bands (the probe reports none) and when checkpoints were sampled
    with different n, so one checkpoint's probe lacks a k on the dataset's shared grid.
    """
    for i, step in enumerate(df["step"]):
        c = cur[step]
        for k, mean, lo, hi in zip(c["k"], c["pass"], c["lo"], c["hi"]):
            for suffix, val in (("", mean), ("_lo", lo), ("_hi", hi)):
                col = f"{prefix}pass@{int(k)}{suffix}"
                if col not in df.columns:
                    df[col] = math.nan
                if pd.isna(df.at[i, col]):
                    df.at[i, col] = val


def _fill_from_metrics(df: pd.DataFrame, metrics: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Fill missing cells (and missing metric columns) from the trainer's metrics.jsonl."""
    if metrics.empty or "dataset" not in metrics.columns:
        return df
    m = metrics[metrics["dataset"] == dataset].drop(columns=["dataset"]).set_index("step")
    m = m.drop(columns=["settings"], errors="ignore").apply(pd.to_numeric, errors="coerce")
    out = df.set_index("step")
    new = [c for c in m.columns if c not in out.columns]
    out = pd.concat([out, pd.DataFrame(math.nan, index=out.index, columns=new)], axis=1)
    out = out.fillna(m.reindex(index=out.index, columns=out.columns))
    return out.reset_index()


def ledger(data: RunData, dataset: str) -> pd.DataFrame:
    """Per-problem solvability ledger: one row per (problem, checkpoint) with its status vs base.

    status is from the study's coverage view: "both", "base_only", "policy_only", "neither"
    (solved = at least one of n samples correct); base rows, and every row when the run has
    no base probe, get "solved"/"unsolved"; a problem the base never saw gets "no_base".
    """
    steps = data.steps(dataset)
    base = data.table(dataset, 0) if 0 in steps else None
    frames = []
    for s in steps:
        t = data.table(dataset, s)
        cols = ["dataset", "problem_id", "step", "checkpoint", "difficulty", "n", "c", "c_valid"]
        out = t[cols].copy()
        out["accuracy"] = t["c"] / t["n"]
        out["solved"] = t["c"] > 0
        if base is None or s == 0:
            out["status"] = np.where(out["solved"], "solved", "unsolved")
        else:
            b, t2 = align(base, t)
            cat = probes.ledger_categories(b["n"].to_numpy(int), b["c"].to_numpy(int),
                                           t2["n"].to_numpy(int), t2["c"].to_numpy(int))
            status = pd.Series(cat, index=t2["problem_id"].to_numpy())
            out["status"] = status.reindex(out["problem_id"]).fillna("no_base").to_numpy()
        frames.append(out)
    return pd.concat(frames, ignore_index=True)
