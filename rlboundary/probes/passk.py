"""Exact pass@k, its bands over problems, and the two summary numbers built on it.

Why: the question "did RL shrink what the model can solve?" is answered by comparing pass@k
curves of the base model and the RL policy out to large k (the study, arXiv 2504.13837, goes to
k=256). That needs an estimator that is unbiased at every k <= n, stable for n in the hundreds,
and fast enough to run at every checkpoint.

Estimator: with n samples of which c are correct, the chance that k samples drawn *without
replacement* contain at least one correct one is

    pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=0}^{k-1} (n-c-i) / (n-i)

(Chen et al. 2021, the same estimator the study uses). We evaluate the product for every
k = 1..max(k) at once as a cumulative sum of log1p(-c / (n-i)) followed by -expm1, which keeps
full relative precision when pass@k is tiny and never forms a binomial coefficient (C(256, 128)
overflows nothing here but does lose digits in float64). c = 0 gives exactly 0; n - c < k gives
exactly 1 (a factor of the product is exactly zero).

Where we differ from common tooling:
- verl's best@N validation metric bootstraps k of the n responses *with* replacement, which is
  biased low: with 1 correct response out of 4, best@4 is 1 - (3/4)^4 ~ 0.68 although every
  4-subset of those 4 responses contains the correct one (unbiased pass@4 = 1.0). We never
  resample responses; we resample *problems* (below) only to get confidence bands.
- The study reports point curves; we add 95% bands over problems, and a paired band for the
  difference between two checkpoints on the same problems (pairing removes the between-problem
  variance that dominates unpaired bands). The default band is a Student-t interval over
  problems (see bands.py for the method and why); the percentile bootstrap is kept as
  method="percentile".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .bands import band
from .counts import as_int_array, check_ks, check_nc, pass_at_k_matrix

# Tolerance for "base curve has reached the policy curve" (float noise in -expm1 of sums).
_TIE_TOL = 1e-12


def pass_at_k(n, c, k):
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) per problem.

    Shapes: n, c are scalars or (P,) (broadcast against each other); k is an int or (K,).
    Returns a float for scalar n, c, k; (P,) for array n/c and int k; (K,) for scalar n/c and
    array k; (P, K) for both arrays.

    Raises ValueError unless 0 <= c <= n and 1 <= k <= n for every problem (the message names
    the offending k and n).
    """
    n_scalar = np.ndim(n) == 0 and np.ndim(c) == 0
    k_scalar = np.ndim(k) == 0
    n_arr, c_arr = check_nc(n, c)
    ks = check_ks(k, n_arr)
    m = pass_at_k_matrix(n_arr, c_arr, ks)
    if n_scalar and k_scalar:
        return float(m[0, 0])
    if n_scalar:
        return m[0]
    if k_scalar:
        return m[:, 0]
    return m


def adaptive_target(n, n_target) -> int | None:
    """The full sample count N of an adaptive probe's rows, or None when every problem has
    its N samples (or ``n_target`` is None: rows of a non-adaptive probe)."""
    if n_target is None:
        return None
    nt = np.atleast_1d(np.asarray(n_target))
    if nt.size == 0 or not (np.asarray(n) < nt).any():
        return None
    return int(nt.max())


def k_max(n, n_target=None) -> int:
    """The largest k pass@k is defined for: n_target for an adaptive probe's rows, else
    min(n)."""
    return adaptive_target(n, n_target) or int(np.min(n))


def per_problem(n, c, ks, n_target=None) -> np.ndarray:
    """Per-problem pass@k ``(P, K)`` for ``n, c (P,)`` and ``ks (K,)``.

    Without ``n_target`` (or when every problem has ``n_target`` samples) the unbiased
    estimator above, which needs ``k <= min(n)``; with problems an adaptive probe stopped early
    (``n < n_target``), the predictive estimate of probes/adaptive.py, for ``k <= n_target``.
    Raises ValueError on invalid counts or k.
    """
    n_arr, c_arr = check_nc(n, c)
    N = adaptive_target(n_arr, n_target)
    if N is None:
        return pass_at_k_matrix(n_arr, c_arr, check_ks(ks, n_arr))
    from .adaptive import predictive

    return predictive(n_arr, c_arr, np.atleast_1d(np.asarray(ks, dtype=np.int64)), N)[0]


def pass_at_k_curve(n, c, ks, n_target=None) -> np.ndarray:
    """Mean pass@k over problems: n, c (P,), ks (K,) or int -> (K,). NaN when P == 0.
    ``n_target``: rows of an adaptive probe (see :func:`per_problem`)."""
    n_arr, c_arr = check_nc(n, c)
    if n_arr.size == 0:
        return np.full(np.atleast_1d(ks).size, np.nan)
    return per_problem(n_arr, c_arr, ks, n_target).mean(axis=0)


def bootstrap_ci(n, c, ks, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 method: str = "t", n_target=None):
    """Band for mean pass@k over problems (the name predates the t default; kept for callers).

    Shapes: n, c (P,); ks (K,) or int. Returns (lo (K,), hi (K,)) at level 1 - alpha, clipped
    to [0, 1]. method="t" (default): Student-t interval over problems (probes/bands.py: why, and
    its sources); n_boot and seed are unused. method="percentile": the alpha/2 and 1-alpha/2
    quantiles of n_boot bootstrap means over problems resampled with replacement,
    deterministic for a given seed; it under-covers below ~30 problems.
    NaN when P == 0, and when P == 1 (no band from one problem).
    Per-problem pass@k is computed once; replicates reuse it (no re-estimation per draw).
    ``n_target``: rows of an adaptive probe (:func:`per_problem`).
    """
    n_arr, c_arr = check_nc(n, c)
    k_arr = np.atleast_1d(np.asarray(ks, dtype=np.int64))
    _, lo, hi = band(per_problem(n_arr, c_arr, k_arr, n_target), n_boot, seed, alpha, method)
    # t: a probability band stays in [0, 1]; percentile: centring leaves float dust (-1e-18).
    return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


def paired_diff_ci(n_a, c_a, n_b, c_b, ks, n_boot: int = 1000, seed: int = 0,
                   alpha: float = 0.05, method: str = "t", n_target_a=None, n_target_b=None):
    """Mean pass@k of checkpoint a minus checkpoint b on the same problems, with a paired band.

    Shapes: n_a, c_a, n_b, c_b (P,), rows aligned by problem; ks (K,) or int, each k <= every
    n_a and n_b. The band is over the per-problem differences, so shared problem difficulty
    cancels: method="t" (default), the paired Student-t interval (probes/bands.py), clipped to
    [-1, 1]; method="percentile", each bootstrap replicate draws one set of problems and
    applies it to both checkpoints. Returns (diff (K,), lo (K,), hi (K,)); lo, hi NaN when
    P < 2. Identical inputs give exactly zero for all three. ``n_target_a`` / ``n_target_b``:
    rows of adaptive probes (:func:`per_problem`).
    """
    na, ca = check_nc(n_a, c_a)
    nb, cb = check_nc(n_b, c_b)
    if na.shape != nb.shape:
        raise ValueError(f"paired inputs need the same problems, got {na.size} and {nb.size} rows")
    k_arr = np.atleast_1d(np.asarray(ks, dtype=np.int64))
    d = per_problem(na, ca, k_arr, n_target_a) - per_problem(nb, cb, k_arr, n_target_b)
    mean, lo, hi = band(d, n_boot, seed, alpha, method)
    return mean, np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0)


class DeltaSE(NamedTuple):
    """Sampling-efficiency gap and the k it was measured at (k < requested when n < k)."""

    value: float
    k: int


def delta_se(base_n, base_c, pol_n, pol_c, k: int = 256, base_target=None,
             pol_target=None) -> DeltaSE:
    """The study's sampling-efficiency gap: mean base pass@k minus mean policy pass@1.

    Shapes: all (P,), rows aligned by problem. Large values mean the base model, given k
    tries, still solves much more than the policy does in one.

    When some base problem has fewer than k samples, pass@k is undefined there; we then use
    k = min(base_n) for every problem (one k for the whole set, so the mean is one curve point)
    and return it as `.k`; callers should label the number "ΔSE@<k>" when k differs from the
    request. The study always had n >= 256 so its ΔSE is the k=256 case. ``base_target`` /
    ``pol_target``: the full sample counts of adaptive probes' rows (:func:`per_problem`).
    """
    bn, bc = check_nc(base_n, base_c)
    pn, pc = check_nc(pol_n, pol_c)
    if bn.shape != pn.shape:
        raise ValueError(f"base and policy need the same problems, got {bn.size} and {pn.size}")
    if int(k) < 1:
        raise ValueError(f"delta_se needs k >= 1, got k={k}")
    if bn.size == 0:
        return DeltaSE(float("nan"), int(k))
    k_used = min(int(k), k_max(bn, base_target))
    base = float(per_problem(bn, bc, [k_used], base_target).mean())
    pol = float(per_problem(pn, pc, [1], pol_target).mean())
    return DeltaSE(base - pol, k_used)


def crossover_k(base_n, base_c, pol_n, pol_c, ks: Sequence[int] | None = None,
                base_target=None, pol_target=None) -> int | None:
    """Smallest k at which the base model's mean pass@k reaches (>=) the policy's.

    Shapes: all (P,), rows aligned by problem. ks: candidate k values (any order); default every
    k from 1 to the largest k both checkpoints support. Candidates above min(base_n) or
    min(pol_n) are ignored (pass@k is undefined there). Returns None when the base curve stays
    below the policy's at every supported candidate (or no candidate is supported). "Reaches"
    allows 1e-12 of float noise, so exact ties count as crossing. ``base_target`` /
    ``pol_target``: the full sample counts of adaptive probes' rows (:func:`per_problem`).
    """
    bn, bc = check_nc(base_n, base_c)
    pn, pc = check_nc(pol_n, pol_c)
    if bn.shape != pn.shape:
        raise ValueError(f"base and policy need the same problems, got {bn.size} and {pn.size}")
    if bn.size == 0:
        return None
    k_sup = min(k_max(bn, base_target), k_max(pn, pol_target))
    if ks is None:
        cand = np.arange(1, k_sup + 1)
    else:
        cand = np.unique(as_int_array(np.atleast_1d(ks), "ks"))
        if cand.size and int(cand.min()) < 1:
            raise ValueError(f"crossover_k needs k >= 1, got k={int(cand.min())}")
        cand = cand[cand <= k_sup]
    if cand.size == 0:
        return None
    base = per_problem(bn, bc, cand, base_target).mean(axis=0)
    pol = per_problem(pn, pc, cand, pol_target).mean(axis=0)
    hit = np.flatnonzero(base >= pol - _TIE_TOL)
    return int(cand[hit[0]]) if hit.size else None
