"""Adaptive pass@k: the curve for k = 1..N from fewer than N samples on most problems.

Why: a study-sized probe (821 problems x 256 samples) costs as much as training, yet a problem
solved 16 times in its first 16 samples has pass@k ~ 1 for every k >= 16 and gains little from
240 more samples. The probe runner samples in rounds and stops a problem once the rest of its
samples could barely move the dataset curve (:func:`freeze`); this module holds the estimator
and the stopping rule, as pure functions of per-problem counts.

Method (empirical Bayes with a beta-binomial prior fitted over the problems, as in "Estimating
pass@k from fewer samples with hierarchical Bayesian priors", arXiv 2510.05197):

* prior: success rates ``p_i ~ Beta(alpha, beta)``, fitted by maximising the beta-binomial
  likelihood of every problem's ``(m_i, c_i)`` (:func:`fit_prior`). One prior for the dataset
  pools what the problems share; a per-problem uniform prior would make every unsolved problem
  of 16 samples look like a coin with p ~ 1/18.
* estimate: for problem ``i`` with ``m_i < N`` samples, the posterior-predictive mean of the
  number the full probe would have computed, ``E[f_k(c_i + C)]`` with ``f_k(x) = 1 - C(N-x, k) /
  C(N, k)`` (the unbiased estimator, passk.py) and ``C ~ BetaBinomial(N - m_i, alpha + c_i,
  beta + m_i - c_i)`` the successes among the samples not drawn. With ``m_i = N`` this *is* the
  unbiased estimator, so a probe that stops nothing (``tol = 0``) reproduces the full one.
  Why the predictive mean of the full estimator rather than the posterior mean of ``1 - (1 -
  p)^k`` (the paper's): the latter is biased at large k for problems never solved, since a Beta
  prior keeps mass near p = 0 (0 of 256 gets a pass@256 near 0.2 under a typical fit).
* stopping (:func:`freeze`, our addition; the paper has a fixed budget): after each round,
  problems are frozen in order of their largest predictive variance over k, as long as the
  summed predictive variance of all frozen problems stays within ``(tol / z)^2 P^2`` at every k.
  The dataset curve then lies within ``tol`` of the full probe's at each k with predictive
  probability ~99% (``z = 2.576``). Unsolved problems keep sampling (their pass@N hinges on the
  samples not drawn); problems solved every time, or whose counts pin p, stop.
* band (:func:`set_band`): on the probed set's own true pass@k,
  ``mean_i E_i +- z sqrt(sum_i (V_pred_i + V_samp_i)) / P``: ``V_pred`` the predictive
  variance above (what stopping adds) and ``V_samp`` the posterior-expected sampling variance
  of the N-sample estimator about the true pass@k (what N samples leave).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .counts import check_nc, pass_at_k_matrix

#: z of the stopping rule: the curve stays within tol of the full curve at ~99% per k.
Z_STOP = 2.576
#: Support of the prior: 0, 1 and 121 logistic-spaced rates from ~1e-4 to 1 - 1e-4.
GRID = np.concatenate([[0.0], 1.0 / (1.0 + np.exp(-np.linspace(-9.0, 9.0, 121))), [1.0]])
#: Share of the prior spread evenly over the grid (epsilon-contamination of the NPMLE).
SMOOTH = 0.1


class Prior(NamedTuple):
    """A discrete prior over success rates: ``weights (G,)`` (sum 1) on ``grid (G,)``."""

    grid: np.ndarray
    weights: np.ndarray


def _xlogy(x, y) -> np.ndarray:
    """``x * log(y)`` with ``0 * log(0) = 0`` (and ``-inf`` for ``x > 0, y = 0``)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(y))


def _loglik(grid: np.ndarray, n: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Log-likelihood of ``c`` successes in ``n`` at each rate: ``(P,), (P,) -> (P, G)``
    (without the binomial coefficient, which cancels in every posterior)."""
    return _xlogy(c[:, None], grid[None, :]) + _xlogy((n - c)[:, None], 1.0 - grid[None, :])


def fit_prior(n, c, iters: int = 500, grid: np.ndarray = GRID) -> Prior:
    """The nonparametric maximum-likelihood prior over the problems' success rates (Kiefer &
    Wolfowitz 1956; g-modelling in Efron's terms), by EM on a fixed grid of rates.

    Counts ``n, c (P,)``. ``P = 0`` gives the uniform weights. Raises ValueError on invalid
    counts (counts.check_nc). Why not a Beta prior (the paper's): the Beta family cannot hold
    the point masses at 0 and 1 and the two humps that a probed model's rates show (many
    problems never solved, many always), and on the tiny base's own rates its misfit biased
    the frozen problems' estimates by ~0.5 points of pass@1 (the selection favours problems
    whose first samples were lucky, which a misfit prior shrinks too little).

    The maximum-likelihood prior is spiky (a few atoms), which makes posteriors overconfident:
    on synthetic sets with a third of the problems unsolvable its 95% band held the true
    pass@64 in 86% of repetitions. We return it mixed with ``SMOOTH`` = 10% of the uniform
    weights over the grid (epsilon-contamination, a standard robust-Bayes device), which
    restored 94-97% (tests/test_adaptive.py).
    """
    n, c = check_nc(n, c)
    G = grid.size
    if n.size == 0:
        return Prior(grid, np.full(G, 1.0 / G))
    pairs, counts = np.unique(np.stack([n, c], 1), axis=0, return_counts=True)
    L = _loglik(grid, pairs[:, 0], pairs[:, 1])
    L = np.exp(L - L.max(axis=1, keepdims=True))           # (U, G), rows scaled to max 1
    w = np.full(G, 1.0 / G)
    for _ in range(iters):
        post = L * w
        post /= post.sum(axis=1, keepdims=True)
        w_new = counts @ post / counts.sum()
        if np.abs(w_new - w).max() < 1e-10:
            w = w_new
            break
        w = w_new
    return Prior(grid, (1.0 - SMOOTH) * w + SMOOTH / G)


def _posterior(prior: Prior, m: int, c: int) -> np.ndarray:
    """Posterior weights over the prior's grid after ``c`` successes in ``m``: ``(G,)``."""
    L = _loglik(prior.grid, np.array([m]), np.array([c]))[0]
    w = prior.weights * np.exp(L - L[prior.weights > 0].max())
    return w / w.sum()


def _binom_pmf(grid: np.ndarray, r: int) -> np.ndarray:
    """Binomial(r, p) probabilities of 0..r for each rate: ``(G, r + 1)``."""
    x = np.arange(r + 1)
    lf = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, r + 1)))])
    logp = (lf[r] - lf[x] - lf[r - x])[None, :] + _xlogy(x[None, :], grid[:, None]) \
        + _xlogy((r - x)[None, :], 1.0 - grid[:, None])
    return np.exp(logp)


def _one(m: int, c: int, ks: np.ndarray, N: int, prior: Prior, binom: dict):
    """Predictive mean and variance ``(K,), (K,)`` of the full estimator for one problem."""
    r = N - m
    if r == 0:
        return pass_at_k_matrix(np.array([N]), np.array([c]), ks)[0], np.zeros(ks.size)
    if r not in binom:
        binom[r] = _binom_pmf(prior.grid, r)
    pmf = _posterior(prior, m, c) @ binom[r]                  # (r + 1,)
    F = pass_at_k_matrix(np.full(r + 1, N), c + np.arange(r + 1), ks)  # (r + 1, K)
    mean = pmf @ F
    return mean, np.maximum(pmf @ (F * F) - mean * mean, 0.0)


def _check(n, c, ks, n_target: int):
    n, c = check_nc(n, c)
    ks = np.atleast_1d(np.asarray(ks, dtype=np.int64))
    N = int(n_target)
    if n.size and int(n.max()) > N:
        raise ValueError(f"n_target={N} is below a problem's sample count {int(n.max())}")
    if ks.size and (int(ks.min()) < 1 or int(ks.max()) > N):
        raise ValueError(f"adaptive pass@k needs 1 <= k <= n_target={N}, got k in "
                         f"[{int(ks.min())}, {int(ks.max())}]")
    return n, c, ks, N


def predictive(n, c, ks, n_target: int, prior: Prior | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem estimate and predictive variance of the full probe's pass@k.

    ``n, c (P,)`` samples drawn and solved, ``ks (K,)`` with ``k <= n_target`` (the full
    probe's samples per problem, N). Returns ``(mean (P, K), var (P, K))``; rows with ``n =
    N`` are the unbiased estimator with variance 0. ``prior`` defaults to :func:`fit_prior` of
    these counts. Raises ValueError on invalid counts or k outside [1, N].
    """
    n, c, ks, N = _check(n, c, ks, n_target)
    prior = prior if prior is not None else fit_prior(n, c)
    mean, var = np.empty((n.size, ks.size)), np.empty((n.size, ks.size))
    memo: dict[tuple[int, int], tuple] = {}
    binom: dict[int, np.ndarray] = {}
    for i, key in enumerate(zip(n.tolist(), c.tolist())):
        if key not in memo:
            memo[key] = _one(key[0], key[1], ks, N, prior, binom)
        mean[i], var[i] = memo[key]
    return mean, var


def _sampling_var(n, c, ks, N: int, prior: Prior) -> np.ndarray:
    """Posterior-expected variance of the N-sample estimator about the true pass@k: ``(P, K)``,
    ``sum_g post(g) Var[f_k(X) | X ~ Binomial(N, p_g)]``."""
    F = pass_at_k_matrix(np.full(N + 1, N), np.arange(N + 1), ks)       # (N + 1, K)
    B = _binom_pmf(prior.grid, N)                               # (G, N + 1)
    mean = B @ F
    per_rate = np.maximum(B @ (F * F) - mean * mean, 0.0)       # (G, K)
    out = np.empty((n.size, ks.size))
    memo: dict[tuple[int, int], np.ndarray] = {}
    for i, key in enumerate(zip(n.tolist(), c.tolist())):
        if key not in memo:
            memo[key] = _posterior(prior, *key) @ per_rate
        out[i] = memo[key]
    return out


def set_band(n, c, ks, n_target: int, prior: Prior | None = None, alpha: float = 0.05
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(point (K,), lo (K,), hi (K,))``: the adaptive pass@k curve and a ``1 - alpha`` band
    on the probed set's own true pass@k (normal approximation over problems; see the module
    docstring). ``point`` is the mean of :func:`predictive`; the band is clipped to [0, 1].
    Empty input gives NaNs."""
    n, c, ks, N = _check(n, c, ks, n_target)
    if n.size == 0:
        nan = np.full(ks.size, np.nan)
        return nan, nan, nan
    prior = prior if prior is not None else fit_prior(n, c)
    mean, v_pred = predictive(n, c, ks, N, prior)
    v_samp = _sampling_var(n, c, ks, N, prior)
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1 - alpha / 2)
    point = mean.mean(axis=0)
    sd = np.sqrt((v_pred + v_samp).sum(axis=0)) / n.size
    return point, np.clip(point - z * sd, 0.0, 1.0), np.clip(point + z * sd, 0.0, 1.0)


def freeze(n, c, n_target: int, frozen, tol: float, z: float = Z_STOP,
           prior: Prior | None = None, min_samples: int = 1) -> np.ndarray:
    """Which problems stop sampling: ``frozen (P,)`` bool grown by the stopping rule.

    ``n, c (P,)``: counts so far; ``frozen``: problems already stopped (they stay stopped);
    ``tol``: the largest acceptable gap between the adaptive and the full dataset curve at any
    k = 1..n_target (pass@k units); ``z``: how many predictive standard deviations that gap
    is. Problems with ``n = n_target`` are done, not frozen. ``tol <= 0`` freezes nothing.
    """
    n, c, _, N = _check(n, c, [1], n_target)
    frozen = np.asarray(frozen, dtype=bool).copy()
    if tol <= 0 or n.size == 0:
        return frozen
    open_ = np.flatnonzero(n < N)
    if open_.size == 0:
        return frozen
    _, var = predictive(n[open_], c[open_], np.arange(1, N + 1), N, prior or fit_prior(n, c))
    limit = (tol / z) ** 2 * n.size ** 2
    used = var[frozen[open_]].sum(axis=0)
    cand = np.flatnonzero(~frozen[open_] & (c[open_] > 0) & (n[open_] >= min_samples))
    for j in cand[np.argsort(var[cand].max(axis=1), kind="stable")]:
        if (used + var[j]).max() > limit:
            break
        used += var[j]
        frozen[open_[j]] = True
    return frozen
