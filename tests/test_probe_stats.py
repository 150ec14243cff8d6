"""probes/stats.py: accuracy histograms, per-response perplexity and token entropy, with
hand-derived values (moved out of test_probes.py, which holds pass@k, bands, ledger and the
probe registry)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rlboundary import probes
from rlboundary.probes import (
    PROBES,
    accuracy_bin_keys,
    accuracy_bin_labels,
    accuracy_histogram,
    entropy_per_problem,
    mean_token_entropy,
    perplexity,
    token_entropy_from_logits,
)

# ------------------------------------------------------------------------------- histogram


def test_accuracy_histogram_hand_example():
    n = [10, 10, 10, 10, 10, 10, 10, 10, 100, 3]
    c = [0, 1, 2, 5, 9, 10, 10, 3, 95, 1]     # 0, .1, .2, .5, .9, 1, 1, .3, .95, 1/3
    edges, counts = accuracy_histogram(n, c)
    assert np.allclose(edges, np.linspace(0, 1, 11))
    labels = accuracy_bin_labels(edges)
    assert labels == ["0", "(0,0.1]", "(0.1,0.2]", "(0.2,0.3]", "(0.3,0.4]", "(0.4,0.5]",
                      "(0.5,0.6]", "(0.6,0.7]", "(0.7,0.8]", "(0.8,0.9]", "(0.9,1)", "1"]
    got = dict(zip(labels, counts.tolist()))
    assert got == {"0": 1, "(0,0.1]": 1, "(0.1,0.2]": 1, "(0.2,0.3]": 1, "(0.3,0.4]": 1,
                   "(0.4,0.5]": 1, "(0.5,0.6]": 0, "(0.6,0.7]": 0, "(0.7,0.8]": 0,
                   "(0.8,0.9]": 1, "(0.9,1)": 1, "1": 2}
    assert counts.sum() == len(n)
    # every tenth lands in the bin it closes (c/n vs the float edges)
    _, counts = accuracy_histogram(np.full(9, 10), np.arange(1, 10))
    assert counts.tolist() == [0] + [1] * 9 + [0, 0]
    # custom edges
    edges, counts = accuracy_histogram([4, 4, 4, 4, 4], [0, 1, 2, 3, 4], bins=[0, 0.5, 1])
    assert counts.tolist() == [1, 2, 1, 1]
    assert accuracy_bin_labels(edges) == ["0", "(0,0.5]", "(0.5,1)", "1"]
    assert accuracy_bin_keys(edges) == ["0", "0-0.5", "0.5-1", "1"]
    with pytest.raises(ValueError):
        accuracy_histogram([4], [1], bins=[0.1, 1])


# ------------------------------------------------------------------- perplexity / entropy


def test_per_response_perplexity_two_responses():
    """(10 nats over 100 tokens, 2 nats over 1 token): pooled exp(12/101) = 1.126, per
    response exp(0.1) = 1.105 and exp(2) = 7.389, mean 4.247."""
    per = probes.response_perplexity([10.0, 2.0], [100, 1])
    assert per == pytest.approx([1.1051709, 7.3890561])
    assert per.mean() == pytest.approx(4.2471135)
    assert perplexity([10.0, 2.0], [100, 1])[1] == pytest.approx(math.exp(12 / 101))
    # one problem holding both responses: per-problem summary, then the probe
    mean, count, quant = probes.grouped_summary(per, [0, 0], 1)
    assert mean[0] == pytest.approx(4.2471135) and count[0] == 2
    assert quant[0, 0] == pytest.approx(1.1051709) and quant[0, -1] == pytest.approx(7.3890561)
    table = {"n": [2], "c": [1], "nll_base_sum": [12.0], "n_tokens": [101],
             "ppl_base_mean": mean, "ppl_base_count": count,
             **{k: quant[:, j] for j, k in enumerate(probes.summary_keys("ppl_base"))}}
    out = PROBES.get("ppl_base")(table, None)
    assert out["ppl_base"] == pytest.approx(4.2471135)
    assert out["ppl_base_pooled"] == pytest.approx(1.1262, abs=1e-4)
    assert out["ppl_base_median"] == pytest.approx((1.1051709 + 7.3890561) / 2)


def test_mixture_quantiles_pool_problems_by_weight():
    # two point-mass problems: 1.0 with weight 3, 5.0 with weight 1 -> median 1.0, q90 5.0
    qs = probes.SUMMARY_QS
    table = np.array([[1.0] * len(qs), [5.0] * len(qs)])
    q50, q90 = probes.mixture_quantiles(table, [3, 1], [0.5, 0.9])
    assert q50 == 1.0 and q90 == 5.0
    # one uniform problem on [0, 10] (its quantiles at the levels): exact at every level
    u = np.array([[10 * q for q in qs]])
    assert probes.mixture_quantiles(u, [8], [0.25, 0.5, 0.6]) == pytest.approx([2.5, 5.0, 6.0])
    # the same problem twice changes nothing; the pool of two uniforms [0,10], [10,20]: median 10
    both = np.vstack([u, u + 10])
    assert probes.mixture_quantiles(both, [1, 1], [0.5])[0] == pytest.approx(10.0)


def test_perplexity_hand_example():
    per, overall = perplexity([0.0, 4.0, 3.0, float("nan")], [2, 4, 0, 5])
    assert per[0] == pytest.approx(1.0) and per[1] == pytest.approx(math.e)
    assert np.isnan(per[2]) and np.isnan(per[3])
    assert overall == pytest.approx(math.exp(4.0 / 6.0))
    per, overall = perplexity([1.0], [0])
    assert np.isnan(per[0]) and math.isnan(overall)


def test_token_entropy_from_logits():
    torch = pytest.importorskip("torch")
    V = 50
    h = token_entropy_from_logits(torch.full((2, 3, V), 7.5))
    assert tuple(h.shape) == (2, 3)
    assert torch.allclose(h, torch.full((2, 3), math.log(V)), atol=1e-5)
    # p = (1/4, 3/4); a -inf logit contributes exactly nothing; temperature halves logits
    logits = torch.tensor([[[0.0, math.log(3.0), float("-inf")]]])
    want = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert token_entropy_from_logits(logits).item() == pytest.approx(want, abs=1e-6)
    hot = token_entropy_from_logits(torch.tensor([[[0.0, 2 * math.log(3.0)]]]), temperature=2.0)
    assert hot.item() == pytest.approx(want, abs=1e-6)
    # huge logits stay finite; chunking gives the same answer
    big = torch.randn(3, 5, 11) * 1e4
    h1 = token_entropy_from_logits(big)
    assert torch.isfinite(h1).all()
    assert torch.allclose(h1, token_entropy_from_logits(big, chunk_rows=2))


def test_mean_token_entropy_and_per_problem():
    ent = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = np.array([[1, 1, 0], [1, 0, 0]])
    assert mean_token_entropy(ent, mask) == pytest.approx(7.0 / 3.0)
    assert math.isnan(mean_token_entropy(ent, np.zeros_like(mask)))
    torch = pytest.importorskip("torch")
    assert mean_token_entropy(torch.tensor(ent), torch.tensor(mask)) == pytest.approx(7.0 / 3.0)
    mean, ntok = entropy_per_problem([np.array([1.0, 1.0]), np.array([3.0]),
                                      np.array([2.0, 2.0, 2.0])], [0, 0, 1], 3)
    assert mean[0] == pytest.approx(5.0 / 3.0) and mean[1] == pytest.approx(2.0)
    assert np.isnan(mean[2]) and ntok.tolist() == [3, 3, 0]


def test_mean_band_over_seeds_by_hand():
    # mean 2, s = 1; for 2 degrees of freedom t_p = (2p - 1) sqrt(2 / (4p(1 - p))), at
    # p = 0.975: 0.95 sqrt(2 / 0.0975) = 4.302652729749464; half-width t / sqrt(3)
    mean, lo, hi = probes.mean_band([1.0, 2.0, 3.0])
    assert mean == 2.0 and hi - mean == pytest.approx(4.302652729749464 / np.sqrt(3), rel=1e-12)
    assert mean - lo == pytest.approx(hi - mean, rel=1e-12)
    one = probes.mean_band([0.5])
    assert one[0] == 0.5 and np.isnan(one[1]) and np.isnan(one[2])
    with pytest.raises(ValueError, match="finite"):
        probes.mean_band([1.0, float("nan")])
