"""Per-token entropy, base-model perplexity and the per-problem accuracy histogram.

Why: the study (arXiv 2504.13837) argues RL narrows the policy onto paths the base model
already samples. Three cheap signals support or refute that at each checkpoint:
- policy entropy (nats per response token) falls as the policy sharpens;
- base-model perplexity of the policy's own samples stays low if RL only reweights paths the
  base model already likes (the study measures the same thing);
- the histogram of per-problem accuracy c/n piles up at 0 and 1 (the study's Figure 5).

Perplexity is the study's, per response: PPL(Y|x) = exp(-(1/T) sum_t log P_base(y_t|x, y_<t));
the scalar ``ppl_base`` is its mean over a checkpoint's responses, and the distribution is kept
per problem as a small quantile summary (grouped_summary; mixture_quantiles pools them into a
checkpoint's median and Figure-6-style boxes). The token-pooled corpus perplexity
exp(total NLL / total tokens), which long responses dominate, is kept as ``ppl_base_pooled``.
Entropy here is the exact entropy of softmax(logits / T) when logits are available; samplers
that only expose the sampled token's log-probability (vLLM) store its negative, a one-sample
Monte Carlo estimate of the same quantity (see CONTRACTS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# ------------------------------------------------------------------------------------ entropy


def token_entropy_from_logits(logits, temperature: float = 1.0, chunk_rows: int = 4096):
    """Entropy (nats) of softmax(logits / temperature) at every position.

    Shapes: logits (B, T, V) (any leading shape works) -> (B, T) float32 torch tensor on the
    logits' device. Computed from log_softmax in float32 (stable for large logits), with
    -inf logits (masked vocabulary) contributing exactly 0. Rows are processed chunk_rows at a
    time so the float32 copy of a bf16 (B*T, V) tensor never has to exist all at once.
    """
    import torch

    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    x = torch.as_tensor(logits)
    lead, V = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, V)
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=flat.device)
    for s in range(0, flat.shape[0], chunk_rows):
        logp = torch.log_softmax(flat[s:s + chunk_rows].float() / temperature, dim=-1)
        plogp = torch.where(torch.isfinite(logp), logp.exp() * logp, torch.zeros_like(logp))
        out[s:s + chunk_rows] = -plogp.sum(dim=-1)
    return out.reshape(lead)


def mean_token_entropy(entropy, mask) -> float:
    """Mean entropy over real tokens: entropy (B, T), mask (B, T) (1 = response token) -> float.

    Accepts numpy arrays or torch tensors. Every token weighs the same, so long responses weigh
    more than short ones. NaN when the mask selects nothing.
    """
    e = _to_numpy(entropy).astype(np.float64)
    m = _to_numpy(mask).astype(np.float64)
    if e.shape != m.shape:
        raise ValueError(f"entropy {e.shape} and mask {m.shape} must have the same shape")
    total = m.sum()
    if total <= 0:
        return float("nan")
    return float((e * m).sum() / total)


def entropy_per_problem(token_entropies: Sequence, prompt_index, n_problems: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Per-problem mean token entropy from one sampler batch.

    Shapes: token_entropies is a list of S arrays (L_s,) (one per sample, the SampleBatch
    field), prompt_index (S,) ints in [0, n_problems). Returns (entropy (P,), n_tokens (P,)):
    each problem's token-weighted mean over all its samples' tokens, NaN where it has none.
    """
    idx = np.asarray(prompt_index, dtype=np.int64)
    if idx.shape != (len(token_entropies),):
        raise ValueError(f"prompt_index {idx.shape} must have one entry per sample "
                         f"({len(token_entropies)})")
    sums = np.zeros(n_problems)
    counts = np.zeros(n_problems, dtype=np.int64)
    if len(token_entropies):
        lens = np.array([np.size(t) for t in token_entropies], dtype=np.int64)
        flat = np.concatenate([np.asarray(t, dtype=np.float64).ravel() for t in token_entropies])
        np.add.at(sums, np.repeat(idx, lens), flat)
        np.add.at(counts, idx, lens)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return mean, counts


def weighted_mean(values, weights=None) -> float:
    """Mean of values (P,) weighted by weights (P,), skipping NaN values and weights <= 0.

    With weights None every finite value counts once. NaN when nothing is left.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    if v.shape != w.shape:
        raise ValueError(f"values {v.shape} and weights {w.shape} must have the same shape")
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return float("nan")
    return float((v[ok] * w[ok]).sum() / w[ok].sum())


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        return x.detach().to("cpu").numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------------- perplexity


def perplexity(nll_sum, n_tokens) -> tuple[np.ndarray, float]:
    """Token-pooled base-model perplexity, per problem and over all of them.

    Shapes: nll_sum (P,) summed response-token NLL in nats, n_tokens (P,) tokens scored.
    Returns (per_problem (P,) = exp(nll_sum / n_tokens), pooled = exp(sum nll / sum tokens)).
    Pooling lets long responses dominate; the study's perplexity is per response (see
    response_perplexity), and this is kept as ``ppl_base_pooled``. Problems with n_tokens == 0
    or a non-finite nll_sum are NaN and left out of the pooled value, which is NaN when no
    problem is left.
    """
    per = response_perplexity(nll_sum, n_tokens)  # same checks: a problem is one "response"
    nll = np.atleast_1d(np.asarray(nll_sum, dtype=np.float64))
    tok = np.atleast_1d(np.asarray(n_tokens, dtype=np.float64))
    ok = np.isfinite(per)
    overall = float(np.exp(nll[ok].sum() / tok[ok].sum())) if ok.any() else float("nan")
    return per, overall


def response_perplexity(nll, n_tokens) -> np.ndarray:
    """The study's per-response perplexity PPL(Y|x) = exp(-(1/T) sum_t log P(y_t | x, y_<t)).

    Shapes: nll (S,) summed NLL of each response's T tokens in nats, n_tokens (S,) its T.
    Returns (S,) floats; NaN where T == 0 or the NLL is not finite. Example: responses of
    (10 nats, 100 tokens) and (2 nats, 1 token) give exp(0.1) = 1.105 and exp(2) = 7.389 (mean
    4.247), where token pooling gives exp(12/101) = 1.126.
    """
    nll = np.atleast_1d(np.asarray(nll, dtype=np.float64))
    tok = np.atleast_1d(np.asarray(n_tokens, dtype=np.float64))
    if nll.shape != tok.shape:
        raise ValueError(f"nll {nll.shape} and n_tokens {tok.shape} must have the same shape")
    if np.any(tok < 0):
        raise ValueError("n_tokens must be >= 0")
    out = np.full(nll.shape, np.nan)
    ok = np.isfinite(nll) & (tok > 0)
    out[ok] = np.exp(nll[ok] / tok[ok])
    return out


#: Quantile levels kept per problem for a distribution of per-response values (ppl_base_q<..>).
SUMMARY_QS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def summary_keys(prefix: str, qs=SUMMARY_QS) -> list[str]:
    """Column names of a per-problem summary: <prefix>_q0, <prefix>_q10, ... (percent levels)."""
    return [f"{prefix}_q{round(100 * q):d}" for q in qs]


def grouped_summary(values, group, n_groups: int, qs=SUMMARY_QS
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, count and quantiles of per-sample values within each group (problem).

    Shapes: values (S,), group (S,) ints in [0, n_groups); NaN values are skipped. Returns
    (mean (G,), count (G,) int64, quantiles (G, Q)) with linear-interpolation quantiles
    (numpy's default); groups with no finite value get NaN mean and quantiles and count 0.
    """
    v = np.atleast_1d(np.asarray(values, dtype=np.float64))
    g = np.atleast_1d(np.asarray(group, dtype=np.int64))
    if v.shape != g.shape:
        raise ValueError(f"values {v.shape} and group {g.shape} must have the same shape")
    q = np.asarray(qs, dtype=np.float64)
    mean = np.full(n_groups, np.nan)
    count = np.zeros(n_groups, dtype=np.int64)
    quant = np.full((n_groups, q.size), np.nan)
    ok = np.isfinite(v)
    for j in range(n_groups):
        x = v[ok & (g == j)]
        if x.size:
            mean[j], count[j], quant[j] = x.mean(), x.size, np.quantile(x, q)
    return mean, count, quant


def mixture_quantiles(quantiles, weights, probs, qs=SUMMARY_QS) -> np.ndarray:
    """Quantiles of a pool of per-problem distributions known only by their quantile summaries.

    Shapes: quantiles (P, Q) at levels qs (Q,) from 0 to 1, weights (P,) (samples per problem),
    probs (M,) in [0, 1]. Each problem's CDF is taken as linear between its stored quantiles
    (exact at them) and the pool's CDF is their weighted mean; returns (M,) values where it
    reaches each prob. Exact when every problem has a single value; otherwise an approximation
    whose error is bounded by the spacing of the stored quantiles. Problems with NaN summaries
    or weight <= 0 are skipped; all NaN when none is left.
    """
    Qt = np.atleast_2d(np.asarray(quantiles, dtype=np.float64))
    w = np.atleast_1d(np.asarray(weights, dtype=np.float64))
    q = np.asarray(qs, dtype=np.float64)
    pr = np.atleast_1d(np.asarray(probs, dtype=np.float64))
    if Qt.shape != (w.size, q.size):
        raise ValueError(f"quantiles {Qt.shape} must be (P, Q) = ({w.size}, {q.size})")
    if q[0] != 0.0 or q[-1] != 1.0 or np.any(np.diff(q) <= 0):
        raise ValueError(f"qs must increase from 0 to 1, got {qs!r}")
    ok = np.all(np.isfinite(Qt), axis=1) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return np.full(pr.shape, np.nan)
    Qt, w = Qt[ok], w[ok] / w[ok].sum()
    grid = np.unique(Qt)
    right = np.zeros(grid.size)  # pooled CDF F(x) at each grid point
    left = np.zeros(grid.size)   # and its left limit F(x-): they differ at jumps
    for row, wt in zip(Qt, w):
        xs = np.unique(row)
        lo = np.array([q[row == x].min() for x in xs])  # CDF jumps from lo to hi at x
        hi = np.array([q[row == x].max() for x in xs])
        if xs.size == 1:
            lo, hi = np.zeros(1), np.ones(1)  # a point mass
        else:
            lo[0], hi[-1] = 0.0, 1.0
        k = np.searchsorted(xs, grid, side="right") - 1
        at = (k >= 0) & (xs[np.clip(k, 0, None)] == grid)
        kk = np.clip(k, 0, xs.size - 2) if xs.size > 1 else np.zeros_like(k)
        if xs.size > 1:  # between xs[k] and xs[k+1]: linear from hi[k] to lo[k+1]
            t = (grid - xs[kk]) / (xs[kk + 1] - xs[kk])
            between = hi[kk] + np.clip(t, 0, 1) * (lo[kk + 1] - hi[kk])
        else:
            between = np.zeros(grid.size)
        r = np.where(k < 0, 0.0, np.where(at, hi[np.clip(k, 0, None)],
                                           np.where(k >= xs.size - 1, 1.0, between)))
        l_ = np.where(k < 0, 0.0, np.where(at, lo[np.clip(k, 0, None)], r))
        right += wt * r
        left += wt * l_
    out = np.empty(pr.shape)
    for i, p in enumerate(pr):
        j = min(int(np.searchsorted(right, p - 1e-12, side="left")), grid.size - 1)
        if j == 0 or left[j] < p - 1e-12:  # p is reached by the jump at grid[j]
            out[i] = grid[j]
        else:  # linear between grid points, as the per-problem CDFs are
            t = (p - right[j - 1]) / max(left[j] - right[j - 1], 1e-300)
            out[i] = grid[j - 1] + np.clip(t, 0, 1) * (grid[j] - grid[j - 1])
    return out


# -------------------------------------------------------------------------- accuracy histogram

#: Default interior edges: tenths. With the two exact-value bins this gives 12 bins.
DEFAULT_EDGES = tuple(round(0.1 * i, 1) for i in range(11))
# Accuracies within this distance of an edge count as equal to it (c/n vs 0.1*i float noise).
_EDGE_TOL = 1e-9


def _check_edges(bins) -> np.ndarray:
    e = np.asarray(DEFAULT_EDGES if bins is None else bins, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or e[0] != 0.0 or e[-1] != 1.0 or np.any(np.diff(e) <= 0):
        raise ValueError(f"bins must be increasing edges from 0 to 1, got {bins!r}")
    return e


def accuracy_histogram(n, c, bins=None) -> tuple[np.ndarray, np.ndarray]:
    """How many problems fall in each per-problem accuracy bin, as in the study's Figure 5.

    Shapes: n, c (P,). bins: increasing edges e_0 = 0 < e_1 < ... < e_m = 1 (default tenths).
    Returns (edges (m+1,), counts (m+2,)), where accuracy a = c/n is binned as

        counts[0]   : a == 0            (never solved)
        counts[j]   : e_{j-1} < a <= e_j  for j = 1..m-1
        counts[m]   : e_{m-1} < a < 1
        counts[m+1] : a == 1            (always solved)

    so exact 0 and exact 1 get their own bins and the interior bins are left-open,
    right-closed. With the default edges the labels are 0, (0,0.1], ..., (0.8,0.9], (0.9,1), 1
    (see accuracy_bin_labels). A value within 1e-9 of an edge counts as on it.
    """
    from .counts import check_nc

    if np.shape(n) != np.shape(c):
        raise ValueError(f"n {np.shape(n)} and c {np.shape(c)} must have the same shape")
    n, c = check_nc(n, c)  # whole numbers, n >= 1 and 0 <= c <= n (names the problem)
    e = _check_edges(bins)
    m = e.size - 1
    counts = np.zeros(m + 2, dtype=np.int64)
    zero, one = c == 0, c == n
    counts[0], counts[m + 1] = int(zero.sum()), int(one.sum())
    a = c[~zero & ~one] / n[~zero & ~one]
    # searchsorted(left) gives j with e[j-1] < a <= e[j]; shifting a down by the tolerance
    # makes values a hair above an edge (float noise) still count as on it.
    j = np.searchsorted(e, a - _EDGE_TOL, side="left")
    j = np.clip(j, 1, m)
    counts[: m + 1] += np.bincount(j, minlength=m + 1)
    return e, counts


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def accuracy_bin_labels(edges=None) -> list[str]:
    """Labels for accuracy_histogram's m+2 bins: ['0', '(0,0.1]', ..., '(0.9,1)', '1']."""
    e = _check_edges(edges)
    m = e.size - 1
    mids = [f"({_fmt(e[j - 1])},{_fmt(e[j])}]" for j in range(1, m)]
    return ["0", *mids, f"({_fmt(e[m - 1])},1)", "1"]


def accuracy_bin_keys(edges=None) -> list[str]:
    """Metric-name-safe keys for the same bins: ['0', '0-0.1', ..., '0.9-1', '1']."""
    e = _check_edges(edges)
    m = e.size - 1
    return ["0", *[f"{_fmt(e[j - 1])}-{_fmt(e[j])}" for j in range(1, m + 1)], "1"]
