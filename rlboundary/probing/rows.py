"""Per-sample rows -> the per-problem table every probe reads (``PROBLEM_COLUMNS``).

Used by the probe workers (probing/fanout.py) on each chunk they sample and score; the probe
runner stores the result (results/store.py) and runs the registered probes on it.
"""

from __future__ import annotations

import pandas as pd

from rlboundary.probes import answer_diversity, grouped_summary, response_perplexity, summary_keys
from rlboundary.tasks.schema import Record
from rlboundary.tasks.verify_keys import answer_key

PPL_SUMMARY = summary_keys("ppl_base")
ANSWER_COLUMNS = ["answers_distinct", "answers_entropy", "answers_distinct_correct",
                  "answers_entropy_correct"]
PROBLEM_COLUMNS = ["problem_id", "dataset", "step", "checkpoint", "difficulty", "n", "n_target",
                   "c", "c_valid", "n_timeout", "n_truncated", "mean_len", "entropy",
                   "nll_base_sum", "n_tokens", "ppl_base_mean", "ppl_base_count", *PPL_SUMMARY,
                   *ANSWER_COLUMNS]


def aggregate(samples: pd.DataFrame, records: list[Record], n: int | None, has_trace: bool
              ) -> pd.DataFrame:
    """Per-sample rows -> one row per problem (PROBLEM_COLUMNS, minus step/dataset/checkpoint
    and n_target). Every problem must have ``n`` samples (RuntimeError); ``n=None`` (adaptive
    probes) only asks for at least one.

    Per-response base perplexity exp(nll_base / n_tokens) is summarised per problem by its
    mean, count (responses with >= 1 token) and quantiles ppl_base_q0 ... ppl_base_q100, so
    the distribution can be drawn without the samples file.
    """
    g = samples.groupby("problem_id", sort=False)
    truncated = (samples["finish_reason"] == "length").groupby(samples["problem_id"],
                                                               sort=False).sum()
    out = pd.DataFrame({
        "n": g.size(), "c": g["correct"].sum(),
        "c_valid": g["valid"].sum() if has_trace else -1,
        "n_timeout": g["timeout"].sum(), "n_truncated": truncated,
        "mean_len": g["n_tokens"].mean(),
        "entropy": g["entropy_sum"].sum() / g["n_tokens"].sum().clip(lower=1),
        "nll_base_sum": g["nll_base"].sum(), "n_tokens": g["n_tokens"].sum(),
    })
    diff = {r.id: r.difficulty for r in records}
    order = [r.id for r in records]
    out = out.reindex(order).reset_index(names="problem_id")
    if out["n"].isna().any() or (n is not None and (out["n"] != n).any()):
        raise RuntimeError(f"sample counts do not match n={n} for some problems")
    index = samples["problem_id"].map({pid: i for i, pid in enumerate(order)}).to_numpy()
    out = _answers(out, samples, index)
    ppl = response_perplexity(samples["nll_base"].to_numpy(float),
                              samples["n_tokens"].to_numpy(float))
    mean, count, quant = grouped_summary(ppl, index, len(order))
    out["ppl_base_mean"], out["ppl_base_count"] = mean, count
    for j, key in enumerate(PPL_SUMMARY):
        out[key] = quant[:, j]
    out["difficulty"] = out["problem_id"].map(diff).astype(float)
    out["n_target"] = out["n"] if n is None else n
    return out.astype({"n": int, "n_target": int, "c": int, "c_valid": int, "n_timeout": int,
                       "n_truncated": int, "n_tokens": int, "ppl_base_count": int})


def _answers(out: pd.DataFrame, samples: pd.DataFrame, index) -> pd.DataFrame:
    """Add the answer-diversity columns (probes/diversity.py): answers keyed by
    ``tasks.verify.answer_key``, over all samples and over the correct ones."""
    import numpy as np

    codes, _ = pd.factorize(samples["pred"].map(answer_key))   # no answer -> -1
    correct = samples["correct"].to_numpy(bool)
    for suffix, keys in (("", codes), ("_correct", np.where(correct, codes, -1))):
        distinct, entropy = answer_diversity(index, keys, len(out))
        out[f"answers_distinct{suffix}"] = distinct
        out[f"answers_entropy{suffix}"] = entropy
    return out
