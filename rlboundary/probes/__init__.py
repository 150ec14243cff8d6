"""Probes: pure numpy functions from per-problem sample counts and scores to metrics.

Layer rule: this package imports only numpy, torch (lazily, for reductions over logits) and
`rlboundary.registry`; no pandas, no file or network I/O. Callers load tables and pass columns.

Modules:
- passk: exact unbiased pass@k, bands over problems (Student-t by default, percentile
  bootstrap on request), paired differences, ΔSE and the base/policy crossover k.
- stats: per-token entropy, base-model perplexity, the per-problem accuracy histogram.
- ledger: which problems base and policy solve at all (coverage, transitions).
- cover: cover@τ, the share of problems solved at least a fraction τ of the time.
- answers: distinct final answers per problem and the entropy of their distribution.
- adaptive: pass@k from an adaptive probe's early-stopped problems (empirical-Bayes
  predictive estimate), its stopping rule and its band.
- suite: the PROBES registry of fn(cur, base, **params) -> dict[str, float] and run_probes.

See each module's docstring for why it exists and where it differs from arXiv 2504.13837.
"""

from .adaptive import fit_prior, freeze, predictive, set_band
from .bands import mean_band
from .cover import DEFAULT_TAUS, cover_at, tau_key  # registers the cover probe
from .diversity import answer_diversity  # registers the answers probe
from .ledger import CATEGORIES, coverage, ledger_categories, transitions, transitions_shared
from .passk import (
                    DeltaSE,
                    adaptive_target,
                    bootstrap_ci,
                    crossover_k,
                    delta_se,
                    k_max,
                    paired_diff_ci,
                    pass_at_k,
                    pass_at_k_curve,
                    per_problem,
)
from .stats import (
                    DEFAULT_EDGES,
                    SUMMARY_QS,
                    accuracy_bin_keys,
                    accuracy_bin_labels,
                    accuracy_histogram,
                    entropy_per_problem,
                    grouped_summary,
                    mean_token_entropy,
                    mixture_quantiles,
                    perplexity,
                    response_perplexity,
                    summary_keys,
                    token_entropy_from_logits,
                    weighted_mean,
)
from .suite import DEFAULT_KS, PROBES, run_probes
from .temperature import match_temperature, softmax_entropy

__all__ = [
                    "CATEGORIES",
                    "DEFAULT_EDGES",
                    "DEFAULT_KS",
                    "DEFAULT_TAUS",
                    "PROBES",
                    "SUMMARY_QS",
                    "DeltaSE",
                    "accuracy_bin_keys",
                    "accuracy_bin_labels",
                    "accuracy_histogram",
                    "adaptive_target",
                    "answer_diversity",
                    "bootstrap_ci",
                    "cover_at",
                    "coverage",
                    "crossover_k",
                    "delta_se",
                    "entropy_per_problem",
                    "fit_prior",
                    "freeze",
                    "grouped_summary",
                    "k_max",
                    "ledger_categories",
                    "match_temperature",
                    "mean_band",
                    "mean_token_entropy",
                    "mixture_quantiles",
                    "paired_diff_ci",
                    "pass_at_k",
                    "pass_at_k_curve",
                    "per_problem",
                    "perplexity",
                    "predictive",
                    "response_perplexity",
                    "run_probes",
                    "set_band",
                    "softmax_entropy",
                    "summary_keys",
                    "tau_key",
                    "token_entropy_from_logits",
                    "transitions",
                    "transitions_shared",
                    "weighted_mean",
]
