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

from .ledger import CATEGORIES, coverage, ledger_categories, transitions, transitions_shared
from .passk import (DeltaSE, adaptive_target, bootstrap_ci, crossover_k, delta_se, k_max,
                    mean_band, paired_diff_ci, pass_at_k, pass_at_k_curve, per_problem)
from .adaptive import fit_prior, freeze, predictive, set_band
from .stats import (DEFAULT_EDGES, accuracy_bin_keys, accuracy_bin_labels, accuracy_histogram,
                    SUMMARY_QS, entropy_per_problem, grouped_summary, mean_token_entropy,
                    mixture_quantiles, perplexity, response_perplexity, summary_keys,
                    token_entropy_from_logits, weighted_mean)
from .suite import DEFAULT_KS, PROBES, run_probes
from .cover import DEFAULT_TAUS, cover_at, tau_key  # registers the cover probe
from .diversity import answer_diversity  # registers the answers probe
from .temperature import match_temperature, softmax_entropy

__all__ = [
    "CATEGORIES", "DEFAULT_EDGES", "DEFAULT_KS", "DEFAULT_TAUS", "DeltaSE", "PROBES",
    "cover_at", "tau_key", "answer_diversity", "match_temperature", "softmax_entropy",
    "accuracy_bin_keys", "accuracy_bin_labels", "accuracy_histogram", "bootstrap_ci",
    "coverage", "crossover_k", "delta_se", "entropy_per_problem", "ledger_categories",
    "mean_token_entropy", "paired_diff_ci", "pass_at_k", "pass_at_k_curve", "perplexity",
    "run_probes", "token_entropy_from_logits", "transitions", "weighted_mean",
    "SUMMARY_QS", "grouped_summary", "mixture_quantiles", "response_perplexity", "summary_keys",
    "transitions_shared", "adaptive_target", "k_max", "per_problem", "fit_prior", "freeze",
    "predictive", "set_band", "mean_band",
]
