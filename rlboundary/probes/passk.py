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
  problems (see `_t_band` for the method and why); the percentile bootstrap is kept as
  method="percentile".
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np

# Largest number of float64 cells one block of the (problems, k) work matrix may hold.
_BLOCK_CELLS = 1 << 22
# Tolerance for "base curve has reached the policy curve" (float noise in -expm1 of sums).
_TIE_TOL = 1e-12
# Band methods over problems: Student-t (default) and the percentile bootstrap.
BAND_METHODS = ("t", "percentile")


def _as_int_array(x, name: str) -> np.ndarray:
    """Whole numbers as int64; a float that is NaN, infinite or fractional raises ValueError
    naming the first offending index and value (never silently truncated: c=0.5 is not 0)."""
    a = np.asarray(x)
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric, got {a!r}") from None
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if np.any(bad):
            i = tuple(int(j) for j in np.argwhere(np.atleast_1d(bad))[0])
            at = f" at problem {i[0]}" if a.ndim else ""
            raise ValueError(f"{name} must hold whole numbers, got {name}="
                             f"{float(np.atleast_1d(a)[i])}{at}")
        a = a.astype(np.int64)
    elif a.dtype.kind in "iub":
        a = a.astype(np.int64)
    else:
        raise ValueError(f"{name} must be integer, got dtype {a.dtype}")
    return a


def _check_nc(n, c) -> tuple[np.ndarray, np.ndarray]:
    """Validate and broadcast sample counts; returns 1-D int64 arrays (P,)."""
    n = _as_int_array(n, "n")
    c = _as_int_array(c, "c")
    if n.ndim > 1 or c.ndim > 1:
        raise ValueError(f"n and c must be scalars or 1-D (P,), got shapes {n.shape}, {c.shape}")
    n, c = np.broadcast_arrays(np.atleast_1d(n), np.atleast_1d(c))
    if np.any(n < 1):
        raise ValueError(f"n must be >= 1 for every problem, got min n = {int(n.min())}")
    if np.any(c < 0) or np.any(c > n):
        bad = int(np.flatnonzero((c < 0) | (c > n))[0])
        raise ValueError(f"need 0 <= c <= n; problem {bad} has c={int(c[bad])}, n={int(n[bad])}")
    return n, c


def _check_ks(k, n: np.ndarray) -> np.ndarray:
    """Validate k against every problem's n; returns 1-D int64 (K,)."""
    ks = _as_int_array(k, "k")
    if ks.ndim > 1:
        raise ValueError(f"k must be an int or 1-D (K,), got shape {ks.shape}")
    ks = np.atleast_1d(ks)
    if ks.size and int(ks.min()) < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={int(ks.min())}")
    if ks.size and n.size and int(ks.max()) > int(n.min()):
        bad = int(np.argmin(n))
        raise ValueError(
            f"pass@k needs k <= n, got k={int(ks.max())} but problem {bad} has only "
            f"n={int(n[bad])} samples")
    return ks


def _matrix(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Per-problem pass@k for validated inputs: (P,), (P,), (K,) -> (P, K) float64."""
    P, K = n.size, ks.size
    out = np.empty((P, K), dtype=np.float64)
    if P == 0 or K == 0:
        return out
    kmax = int(ks.max())
    i = np.arange(kmax, dtype=np.float64)                    # (kmax,)
    rows = max(1, _BLOCK_CELLS // kmax)
    for s in range(0, P, rows):
        nb = n[s:s + rows, None].astype(np.float64)          # (b, 1)
        cb = c[s:s + rows, None].astype(np.float64)
        # log of factor i: log((n-c-i)/(n-i)) = log1p(-c/(n-i)); i <= k-1 <= n-1 so n-i >= 1.
        # Once i >= n-c the factor is 0 (log -inf, product 0, pass@k exactly 1); beyond that
        # c/(n-i) would exceed 1 and log1p would give NaN, so clip the ratio at 1.
        ratio = np.minimum(cb / np.maximum(nb - i, 1.0), 1.0)  # (b, kmax)
        with np.errstate(divide="ignore"):
            logq = np.cumsum(np.log1p(-ratio), axis=1)
        out[s:s + rows] = -np.expm1(logq[:, ks - 1])
    return out


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
    n_arr, c_arr = _check_nc(n, c)
    ks = _check_ks(k, n_arr)
    m = _matrix(n_arr, c_arr, ks)
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
    n_arr, c_arr = _check_nc(n, c)
    N = adaptive_target(n_arr, n_target)
    if N is None:
        return _matrix(n_arr, c_arr, _check_ks(ks, n_arr))
    from .adaptive import predictive

    return predictive(n_arr, c_arr, np.atleast_1d(np.asarray(ks, dtype=np.int64)), N)[0]


def pass_at_k_curve(n, c, ks, n_target=None) -> np.ndarray:
    """Mean pass@k over problems: n, c (P,), ks (K,) or int -> (K,). NaN when P == 0.
    ``n_target``: rows of an adaptive probe (see :func:`per_problem`)."""
    n_arr, c_arr = _check_nc(n, c)
    if n_arr.size == 0:
        return np.full(np.atleast_1d(ks).size, np.nan)
    return per_problem(n_arr, c_arr, ks, n_target).mean(axis=0)


def _resample_weights(P: int, n_boot: int, seed: int) -> np.ndarray:
    """How often each problem is drawn in each replicate: (n_boot, P) float64, rows sum to P.

    Equivalent to indexing rows with an (n_boot, P) matrix of draws-with-replacement, but lets
    the replicate means be one (n_boot, P) @ (P, K) product instead of an (n_boot, P, K) gather.
    """
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, P, size=(n_boot, P))
    flat = idx + (np.arange(n_boot)[:, None] * P)
    return np.bincount(flat.ravel(), minlength=n_boot * P).reshape(n_boot, P).astype(np.float64)


def _check_band_args(alpha: float, n_boot: int, method: str) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if method not in BAND_METHODS:
        raise ValueError(f"band method must be one of {BAND_METHODS}, got {method!r}")
    if method == "percentile" and int(n_boot) < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _percentile_band(per_problem: np.ndarray, n_boot: int, seed: int, alpha: float):
    """Point mean and percentile band of the mean over rows: (P, K) -> (K,), (K,), (K,).

    Needs P >= 2; `_band` answers P < 2 (one problem resampled is itself: no band).
    """
    P = per_problem.shape[0]
    mean = per_problem.mean(axis=0)
    # Centre first: replicate = mean + W @ (x - mean) / P. Identical rows then give exactly
    # zero deviations, so the band collapses to the point exactly, not to within rounding.
    dev = per_problem - mean
    w = _resample_weights(P, int(n_boot), seed)
    boot = mean + (w @ dev) / P                                # (n_boot, K)
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return mean, lo, hi


def _t_abs_cdf(theta: float, df: int) -> float:
    """P(|T| < sqrt(df) tan(theta)) for Student's t with integer df >= 1, 0 <= theta < pi/2.

    Closed form for integer df (Abramowitz & Stegun 1964, 26.7.3-26.7.4): a finite series in
    cos(theta)^2, summed here as one cumulative product, exact to float rounding at any df.
    """
    s, c2 = np.sin(theta), np.cos(theta) ** 2
    if df % 2 == 0:
        j = np.arange(1, df // 2, dtype=np.float64)            # terms (2j-1)/(2j) c2
        terms = np.cumprod((2.0 * j - 1.0) / (2.0 * j) * c2)
        return float(s * (1.0 + terms.sum()))
    a = theta
    if df > 1:
        j = np.arange(1, (df - 1) // 2, dtype=np.float64)      # terms (2j)/(2j+1) c2
        terms = np.cumprod(2.0 * j / (2.0 * j + 1.0) * c2)
        a += s * np.cos(theta) * (1.0 + terms.sum())
    return float(2.0 / np.pi * a)


@lru_cache(maxsize=256)
def _t_quantile(df: int, alpha: float) -> float:
    """Two-sided critical value t with P(|T_df| < t) = 1 - alpha (numpy only, no scipy).

    Bisection on theta = atan(t / sqrt(df)) in (0, pi/2), where the CDF above is monotone;
    60 halvings put theta within 1.4e-18 of the root, i.e. float64 precision in t.
    """
    lo, hi = 0.0, np.pi / 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _t_abs_cdf(mid, df) < 1.0 - alpha:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(df) * np.tan(0.5 * (lo + hi)))


def _t_band(per_problem: np.ndarray, alpha: float):
    """Point mean and Student-t band of the mean over rows: (P, K) -> (K,), (K,), (K,).

    Method: mean +- t_{P-1, 1-alpha/2} * s / sqrt(P), s the sample standard deviation (ddof=1)
    of the per-problem values, i.e. the CLT interval over problems that Miller (2024, "Adding
    Error Bars to Evals", arXiv 2411.00640, sec. 2-3) recommends for eval scores that are means
    over questions, with Student's t (Student 1908) in place of z so it keeps its level when
    the problems are few. Applied to per-problem differences it is the paired t interval
    (Miller sec. 4).

    Why not the percentile bootstrap (method="percentile"): its band is the spread of
    resampled means, whose standard deviation is s * sqrt((P-1)/P) / sqrt(P), read off with
    normal-like quantiles; at P = 10 that is about 1.96 * 0.95 = 1.86 standard errors against
    t's 2.26, so it under-covers (tests/test_bands.py setup, 10 problems: percentile 0.910 for
    pass@1 and 0.885 for pass@4, t 0.942 and 0.916; at 100 problems both ~0.95), the
    "narrowness bias" Hesterberg (2015, "What teachers should know about the bootstrap",
    The American Statistician 69(4), sec. 5) describes. BCa corrects skew and bias of the
    bootstrap distribution but not this narrowness, and costs a jackknife on top. The t band
    is exact for normal data, close for the bounded, mildly skewed per-problem pass@k seen
    here, deterministic (no seed) and needs no resampling. Limit: when k is large against the
    spread of difficulty, per-problem pass@k piles up at exactly 1 with a thin tail near 0;
    no symmetric band (nor the percentile one) reaches 0.95 at 10 problems there.

    Needs P >= 2 (`_band` answers P < 2). Identical rows give s = 0 exactly, a band equal
    to the point.
    """
    P = per_problem.shape[0]
    mean = per_problem.mean(axis=0)
    s = np.sqrt(np.square(per_problem - mean).sum(axis=0) / (P - 1))
    # The float mean of identical values can be off by an ulp: make it the value, spread zero.
    same = np.all(per_problem == per_problem[0], axis=0)
    mean = np.where(same, per_problem[0], mean)
    s[same] = 0.0
    half = _t_quantile(P - 1, float(alpha)) * s / np.sqrt(P)
    return mean, mean - half, mean + half


def _band(per_problem: np.ndarray, n_boot: int, seed: int, alpha: float, method: str):
    """Dispatch to the band `method` ("t" or "percentile"); (P, K) -> mean, lo, hi (K,).

    Both methods need two or more problems: P == 0 gives all NaN, P == 1 the mean with a NaN
    band (one problem carries no between-problem spread; a zero-width band would claim a
    certainty it does not have).
    """
    _check_band_args(alpha, n_boot, method)
    P, K = per_problem.shape
    if P < 2:
        mean = per_problem.mean(axis=0) if P else np.full(K, np.nan)
        return mean, np.full(K, np.nan), np.full(K, np.nan)
    if method == "t":
        return _t_band(per_problem, alpha)
    return _percentile_band(per_problem, n_boot, seed, alpha)


def mean_band(values, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean of ``values (m,)`` with its Student-t band at level 1 - alpha: (mean, lo, hi).

    For summaries over independent repeats, e.g. one number per training seed: the band is
    mean +- t_{m-1, 1-alpha/2} * s / sqrt(m) (`_t_band`), not clipped. NaN band for m < 2;
    raises ``ValueError`` on a NaN or infinite value.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    if not np.isfinite(v).all():
        raise ValueError("mean_band: values must be finite")
    mean, lo, hi = _band(v, 1, 0, alpha, "t")
    return float(mean[0]), float(lo[0]), float(hi[0])


def bootstrap_ci(n, c, ks, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05,
                 method: str = "t", n_target=None):
    """Band for mean pass@k over problems (the name predates the t default; kept for callers).

    Shapes: n, c (P,); ks (K,) or int. Returns (lo (K,), hi (K,)) at level 1 - alpha, clipped
    to [0, 1]. method="t" (default): Student-t interval over problems (see `_t_band`: why, and
    its sources); n_boot and seed are unused. method="percentile": the alpha/2 and 1-alpha/2
    quantiles of n_boot bootstrap means over problems resampled with replacement,
    deterministic for a given seed; it under-covers below ~30 problems.
    NaN when P == 0, and when P == 1 (no band from one problem).
    Per-problem pass@k is computed once; replicates reuse it (no re-estimation per draw).
    ``n_target``: rows of an adaptive probe (:func:`per_problem`).
    """
    n_arr, c_arr = _check_nc(n, c)
    k_arr = np.atleast_1d(np.asarray(ks, dtype=np.int64))
    _, lo, hi = _band(per_problem(n_arr, c_arr, k_arr, n_target), n_boot, seed, alpha, method)
    # t: a probability band stays in [0, 1]; percentile: centring leaves float dust (-1e-18).
    return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


def paired_diff_ci(n_a, c_a, n_b, c_b, ks, n_boot: int = 1000, seed: int = 0,
                   alpha: float = 0.05, method: str = "t", n_target_a=None, n_target_b=None):
    """Mean pass@k of checkpoint a minus checkpoint b on the same problems, with a paired band.

    Shapes: n_a, c_a, n_b, c_b (P,), rows aligned by problem; ks (K,) or int, each k <= every
    n_a and n_b. The band is over the per-problem differences, so shared problem difficulty
    cancels: method="t" (default), the paired Student-t interval (see `_t_band`), clipped to
    [-1, 1]; method="percentile", each bootstrap replicate draws one set of problems and
    applies it to both checkpoints. Returns (diff (K,), lo (K,), hi (K,)); lo, hi NaN when
    P < 2. Identical inputs give exactly zero for all three. ``n_target_a`` / ``n_target_b``:
    rows of adaptive probes (:func:`per_problem`).
    """
    na, ca = _check_nc(n_a, c_a)
    nb, cb = _check_nc(n_b, c_b)
    if na.shape != nb.shape:
        raise ValueError(f"paired inputs need the same problems, got {na.size} and {nb.size} rows")
    k_arr = np.atleast_1d(np.asarray(ks, dtype=np.int64))
    d = per_problem(na, ca, k_arr, n_target_a) - per_problem(nb, cb, k_arr, n_target_b)
    mean, lo, hi = _band(d, n_boot, seed, alpha, method)
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
    bn, bc = _check_nc(base_n, base_c)
    pn, pc = _check_nc(pol_n, pol_c)
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
    bn, bc = _check_nc(base_n, base_c)
    pn, pc = _check_nc(pol_n, pol_c)
    if bn.shape != pn.shape:
        raise ValueError(f"base and policy need the same problems, got {bn.size} and {pn.size}")
    if bn.size == 0:
        return None
    k_sup = min(k_max(bn, base_target), k_max(pn, pol_target))
    if ks is None:
        cand = np.arange(1, k_sup + 1)
    else:
        cand = np.unique(_as_int_array(np.atleast_1d(ks), "ks"))
        if cand.size and int(cand.min()) < 1:
            raise ValueError(f"crossover_k needs k >= 1, got k={int(cand.min())}")
        cand = cand[cand <= k_sup]
    if cand.size == 0:
        return None
    base = per_problem(bn, bc, cand, base_target).mean(axis=0)
    pol = per_problem(pn, pc, cand, pol_target).mean(axis=0)
    hit = np.flatnonzero(base >= pol - _TIE_TOL)
    return int(cand[hit[0]]) if hit.size else None
