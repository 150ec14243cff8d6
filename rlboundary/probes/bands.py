"""Bands over problems for a mean over problems: the Student-t interval (default) and the
percentile bootstrap, both on a ``(P, K)`` matrix of per-problem values (pass@k at K values of
k, or paired differences of two checkpoints).

Why Student-t by default, and its sources, are in :func:`_t_band`; :func:`band` dispatches on
the method, :func:`mean_band` summarises independent repeats (one number per training seed).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Band methods over problems: Student-t (default) and the percentile bootstrap.
BAND_METHODS = ("t", "percentile")


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

    Needs P >= 2; `band` answers P < 2 (one problem resampled is itself: no band).
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

    Needs P >= 2 (`band` answers P < 2). Identical rows give s = 0 exactly, a band equal
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


def band(per_problem: np.ndarray, n_boot: int, seed: int, alpha: float, method: str):
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
    mean, lo, hi = band(v, 1, 0, alpha, "t")
    return float(mean[0]), float(lo[0]), float(hi[0])
