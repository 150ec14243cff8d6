"""The registered probes: per-problem table columns in, scalar metrics out.

Every probe has the CONTRACTS.md signature

    fn(cur: Mapping[str, array], base: Mapping[str, array] | None, **params) -> dict[str, float]

where `cur` and `base` are column mappings of the per-problem probe table (a pandas DataFrame
works; only `[...]` and `in` are used), rows aligned by problem_id by the caller. Probes that
compare with the base model return {} when base is None; probes whose input column is absent or
unmeasured (all NaN / zero tokens) return {} rather than a NaN so the metric log stays clean.
Each probe has a Hydra config rlboundary/conf/probe/<name>.yaml holding its name and params.

Probes must not raise on an ordinary run (they run at every checkpoint): k values above the
smallest sample count are dropped rather than rejected, and the count itself is added instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from rlboundary.registry import Registry

from .adaptive import set_band
from .bands import band
from .beyond import predict
from .counts import check_nc, column
from .ledger import coverage
from .passk import adaptive_target, crossover_k, delta_se, k_max, per_problem
from .stats import (
    accuracy_bin_keys,
    accuracy_histogram,
    mixture_quantiles,
    perplexity,
    summary_keys,
    weighted_mean,
)

Probe = Callable[..., dict]
PROBES: Registry[Probe] = Registry("probe")

#: Below this many problems the pass@k bands (k > 1) are marked approximate (band_approx).
APPROX_BELOW = 30

#: Powers of two to 256, the study's k grid.
DEFAULT_KS = tuple(2**i for i in range(9))


def _supported_ks(ks: Iterable[int], n_min: int) -> list[int]:
    """ks that pass@k supports with n_min samples; n_min itself is added if any k was dropped."""
    ks = sorted({int(k) for k in ks})
    if ks and ks[0] < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={ks[0]}")
    keep = [k for k in ks if k <= n_min]
    if len(keep) < len(ks) and n_min not in keep:
        keep.append(n_min)
    return keep


def _same_rows(cur: Mapping, base: Mapping) -> None:
    a, b = len(np.asarray(cur["n"])), len(np.asarray(base["n"]))
    if a != b:
        raise ValueError(f"cur and base must be aligned by problem, got {a} and {b} rows")


@PROBES.register("pass_at_k")
def probe_pass_at_k(cur: Mapping, base: Mapping | None = None, *, ks=DEFAULT_KS,
                    n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                    valid: bool = True, method: str = "t") -> dict[str, float]:
    """pass@<k>, pass@<k>_lo, pass@<k>_hi (band over problems, in [0, 1]) for each k.

    method="t" (default): Student-t interval over problems; "percentile": bootstrap with n_boot
    replicates and seed (see passk.bootstrap_ci). With one problem _lo and _hi are NaN.
    ``band_approx`` is 1.0 when fewer than APPROX_BELOW problems were probed: there the bands
    of pass@k for k > 1 can under-cover (measured in tests/test_bands.py: 0.916 for pass@4 at
    10 problems, 0.65-0.80 for pass@16 when most problems are always solved), so reports mark
    them approximate; 0.0 otherwise.

    With valid=True and a c_valid column, also valid_pass@<k> (whole-trace validity) over the
    problems whose task has a trace check (c_valid >= 0); skipped when none does.
    """
    n, c = check_nc(column(cur, "n", None), column(cur, "c", None))
    if n.size == 0:
        return {}
    nt = column(cur, "n_target", None)
    N = adaptive_target(n, nt)
    k_list = _supported_ks(ks, k_max(n, nt))
    k_arr = np.asarray(k_list, dtype=np.int64)
    mean, lo, hi = band(per_problem(n, c, k_arr, nt), n_boot, seed, alpha, method)
    lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
    out: dict[str, float] = {"band_approx": float(n.size < APPROX_BELOW)}
    for i, k in enumerate(k_list):
        out[f"pass@{k}"] = float(mean[i])
        out[f"pass@{k}_lo"] = float(lo[i])
        out[f"pass@{k}_hi"] = float(hi[i])
    if N is not None:
        out.update(_adaptive_extras(n, c, k_arr, N, alpha))
    cv = column(cur, "c_valid", None) if valid else None
    if cv is not None and (cv >= 0).any():
        sel = cv >= 0
        nv, cvv = check_nc(n[sel], cv[sel])
        ntv = None if nt is None else nt[sel]
        kv = np.asarray(_supported_ks(ks, k_max(nv, ntv)), dtype=np.int64)
        for k, v in zip(kv, per_problem(nv, cvv, kv, ntv).mean(axis=0)):
            out[f"valid_pass@{int(k)}"] = float(v)
    return out


def _adaptive_extras(n, c, ks, N: int, alpha: float) -> dict[str, float]:
    """An adaptive probe's sample counts and its band on the probed set's own pass@k
    (probes/adaptive.py: set_band), ``pass@<k>_set_lo`` / ``_set_hi``."""
    _, lo, hi = set_band(n, c, ks, N, alpha=alpha)
    out = {"samples_used": float(n.sum()), "samples_saved": float(N * n.size - n.sum()),
           "samples_used_share": float(n.sum() / (N * n.size))}
    for i, k in enumerate(ks.tolist()):
        out[f"pass@{k}_set_lo"], out[f"pass@{k}_set_hi"] = float(lo[i]), float(hi[i])
    return out


@PROBES.register("pass_at_k_pred")
def probe_pass_at_k_pred(cur: Mapping, base: Mapping | None = None, *,
                         ks=(512, 1024, 2048, 4096, 8192), n_boot: int = 50, seed: int = 0,
                         alpha: float = 0.05) -> dict[str, float]:
    """pass@<k>_pred, pass@<k>_pred_lo, pass@<k>_pred_hi for each k beyond the smallest sample
    count: predicted from the samples drawn by a zero-inflated beta-binomial prior fitted over
    the problems, with a band that holds the prior's uncertainty (probes/beyond.py). k values
    within the samples are left to pass_at_k (measured there)."""
    n, c = check_nc(column(cur, "n", None), column(cur, "c", None))
    beyond = sorted(int(k) for k in ks if int(k) > (int(n.min()) if n.size else 0))
    if n.size == 0 or not beyond:
        return {}
    pred = predict(n, c, beyond, alpha=alpha, n_boot=n_boot, seed=seed)
    out: dict[str, float] = {}
    for i, k in enumerate(beyond):
        out[f"pass@{k}_pred"] = float(pred.point[i])
        out[f"pass@{k}_pred_lo"], out[f"pass@{k}_pred_hi"] = float(pred.lo[i]), float(pred.hi[i])
    return out


@PROBES.register("entropy")
def probe_entropy(cur: Mapping, base: Mapping | None = None) -> dict[str, float]:
    """entropy: mean per-token policy entropy (nats), problems weighted by their token count.

    The weight of a problem is n * mean_len (its response tokens) when mean_len is present,
    else n_tokens, else 1; problems with a NaN entropy are skipped.
    """
    ent = column(cur, "entropy")
    if ent is None or not np.isfinite(ent).any():
        return {}
    w = None
    mean_len, n = column(cur, "mean_len"), column(cur, "n")
    if mean_len is not None and n is not None and np.isfinite(mean_len).any():
        w = mean_len * n
    elif column(cur, "n_tokens") is not None:
        w = column(cur, "n_tokens")
    val = weighted_mean(ent, w)
    return {} if math.isnan(val) else {"entropy": val}


@PROBES.register("ppl_base")
def probe_ppl_base(cur: Mapping, base: Mapping | None = None) -> dict[str, float]:
    """Base-model perplexity of this checkpoint's responses (the study's, per response).

    ppl_base: mean over responses of exp(response NLL / response tokens), from the per-problem
    columns ppl_base_mean and ppl_base_count (responses with >= 1 token); ppl_base_median,
    ppl_base_q10, ppl_base_q90: quantiles of the pooled per-response values, from each
    problem's quantile summary (ppl_base_q0 ... ppl_base_q100; approximate, see
    stats.mixture_quantiles); ppl_base_pooled: exp(total NLL / total tokens) from nll_base_sum
    and n_tokens (long responses dominate it). Tables without the per-response columns
    (written before they existed) give ppl_base_pooled only.
    """
    out: dict[str, float] = {}
    nll, tok = column(cur, "nll_base_sum"), column(cur, "n_tokens")
    if nll is not None and tok is not None:
        _, pooled = perplexity(nll, tok)
        if not math.isnan(pooled):
            out["ppl_base_pooled"] = pooled
    mean, cnt = column(cur, "ppl_base_mean"), column(cur, "ppl_base_count")
    if mean is not None and cnt is not None:
        val = weighted_mean(mean, cnt)
        if not math.isnan(val):
            out["ppl_base"] = val
            keys = summary_keys("ppl_base")
            if all(k in cur for k in keys):
                table = np.stack([column(cur, k) for k in keys], axis=1)
                q10, med, q90 = mixture_quantiles(table, cnt, [0.1, 0.5, 0.9])
                out.update({"ppl_base_median": float(med), "ppl_base_q10": float(q10),
                            "ppl_base_q90": float(q90)})
    return out


@PROBES.register("coverage")
def probe_coverage(cur: Mapping, base: Mapping | None = None) -> dict[str, float]:
    """coverage/{both,base_only,policy_only,neither} fractions, plus gained / lost counts.

    gained = problems the policy solves (c > 0) that the base model does not (the
    policy_only count); lost = the reverse (the base_only count). Relative to the base model,
    since a probe sees only the current checkpoint and the base; `transitions` in ledger.py
    compares any two checkpoints.
    """
    if base is None:
        return {}
    _same_rows(cur, base)
    cov = coverage(column(base, "n", None), column(base, "c", None),
                   column(cur, "n", None), column(cur, "c", None))
    if cov["n_problems"] == 0:
        return {}
    out = {f"coverage/{k}": float(cov[k]) for k in ("both", "base_only", "policy_only", "neither")}
    out["gained"] = float(cov["n_policy_only"])
    out["lost"] = float(cov["n_base_only"])
    return out


@PROBES.register("delta_se")
def probe_delta_se(cur: Mapping, base: Mapping | None = None, *, k: int = 256
                   ) -> dict[str, float]:
    """delta_se: base pass@k minus policy pass@1; delta_se_k: the k actually used (<= min n)."""
    if base is None:
        return {}
    _same_rows(cur, base)
    if len(np.asarray(cur["n"])) == 0:
        return {}
    d = delta_se(column(base, "n", None), column(base, "c", None),
                 column(cur, "n", None), column(cur, "c", None), k=k,
                 base_target=column(base, "n_target", None), pol_target=column(cur, "n_target", None))
    return {"delta_se": d.value, "delta_se_k": float(d.k)}


@PROBES.register("crossover_k")
def probe_crossover_k(cur: Mapping, base: Mapping | None = None, *, ks=None
                      ) -> dict[str, float]:
    """crossover_k: smallest k where base pass@k >= policy pass@k; NaN if it never does."""
    if base is None:
        return {}
    _same_rows(cur, base)
    if len(np.asarray(cur["n"])) == 0:
        return {}
    k = crossover_k(column(base, "n", None), column(base, "c", None),
                    column(cur, "n", None), column(cur, "c", None), ks=ks,
                    base_target=column(base, "n_target", None),
                    pol_target=column(cur, "n_target", None))
    return {"crossover_k": float("nan") if k is None else float(k)}


@PROBES.register("acc_hist")
def probe_acc_hist(cur: Mapping, base: Mapping | None = None, *, bins=None
                   ) -> dict[str, float]:
    """acc_hist/<bin>: number of problems per accuracy bin (keys '0', '0-0.1', ..., '0.9-1', '1').

    Binning as accuracy_histogram: exact 0 and exact 1 are their own bins; '0.9-1' is (0.9, 1).
    """
    n, c = column(cur, "n", None), column(cur, "c", None)
    if n is None or c is None or n.size == 0:
        return {}
    edges, counts = accuracy_histogram(n, c, bins)
    return {f"acc_hist/{key}": float(v) for key, v in zip(accuracy_bin_keys(edges), counts)}


def _normalise(names_and_params) -> list[tuple[str, dict[str, Any]]]:
    """Accept a name, names, (name, params) pairs, {name: params}, or [{'name': ..., **params}]."""
    if isinstance(names_and_params, str):
        return [(names_and_params, {})]
    if isinstance(names_and_params, Mapping):
        if "name" in names_and_params:  # a single Hydra probe config
            d = dict(names_and_params)
            return [(str(d.pop("name")), d)]
        return [(str(k), dict(v or {})) for k, v in names_and_params.items()]
    out = []
    for item in names_and_params:
        if isinstance(item, str):
            out.append((item, {}))
        elif isinstance(item, Mapping):
            d = dict(item)
            if "name" not in d:
                raise ValueError(f"probe config without a 'name': {item!r}")
            out.append((str(d.pop("name")), d))
        else:
            name, params = item
            out.append((str(name), dict(params or {})))
    return out


def run_probes(names_and_params, cur: Mapping, base: Mapping | None = None) -> dict[str, float]:
    """Run several probes and merge their metrics into one dict.

    names_and_params: a probe name, a list of names, (name, params) pairs, a {name: params}
    mapping, or Hydra-style dicts {'name': ..., **params} (e.g. the conf/probe/*.yaml
    contents). Two probes producing the same metric name is an error.
    """
    out: dict[str, float] = {}
    for name, params in _normalise(names_and_params):
        res = PROBES.get(name)(cur, base, **params)
        clash = out.keys() & res.keys()
        if clash:
            raise ValueError(f"probe '{name}' repeats metric(s) {sorted(clash)}")
        out.update(res)
    return out
