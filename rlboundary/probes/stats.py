"""Per-token entropy, base-model perplexity and the per-problem accuracy histogram.

Why: the study (arXiv 2504.13837) argues RL narrows the policy onto paths the base model
already samples. Three cheap signals support or refute that at each checkpoint:
- policy entropy (nats per response token) falls as the policy sharpens;
- base-model perplexity of the policy's own samples stays low if RL only reweights paths the
  base model already likes (the study measures the same thing);
- the histogram of per-problem accuracy c/n piles up at 0 and 1 (the study's Figure 5).

Our choices: the scalar perplexity pools tokens (exp of total NLL over total tokens, the usual
corpus perplexity), so long responses weigh more; the per-problem column is kept alongside.
Entropy here is the exact entropy of softmax(logits / T) when logits are available; samplers
that only expose the sampled token's log-probability (vLLM) store its negative, a one-sample
Monte Carlo estimate of the same quantity (see CONTRACTS.md).
"""

from __future__ import annotations

from typing import Sequence

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
    """Base-model perplexity of each problem's samples and of all of them together.

    Shapes: nll_sum (P,) summed response-token NLL in nats, n_tokens (P,) tokens scored.
    Returns (per_problem (P,) = exp(nll_sum / n_tokens), overall = exp(sum nll / sum tokens)).
    Problems with n_tokens == 0 or a non-finite nll_sum are NaN and left out of the overall,
    which is NaN when no problem is left.
    """
    nll = np.atleast_1d(np.asarray(nll_sum, dtype=np.float64))
    tok = np.atleast_1d(np.asarray(n_tokens, dtype=np.float64))
    if nll.shape != tok.shape:
        raise ValueError(f"nll_sum {nll.shape} and n_tokens {tok.shape} must have the same shape")
    if np.any(tok < 0):
        raise ValueError("n_tokens must be >= 0")
    ok = np.isfinite(nll) & np.isfinite(tok) & (tok > 0)
    per = np.full(nll.shape, np.nan)
    per[ok] = np.exp(nll[ok] / tok[ok])
    overall = float(np.exp(nll[ok].sum() / tok[ok].sum())) if ok.any() else float("nan")
    return per, overall


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
    n = np.atleast_1d(np.asarray(n, dtype=np.int64))
    c = np.atleast_1d(np.asarray(c, dtype=np.int64))
    if n.shape != c.shape:
        raise ValueError(f"n {n.shape} and c {c.shape} must have the same shape")
    if np.any(n < 1) or np.any(c < 0) or np.any(c > n):
        raise ValueError("need n >= 1 and 0 <= c <= n for every problem")
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
