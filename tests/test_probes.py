"""rlboundary.probes against brute force and hand-derived values."""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from rlboundary import probes
from rlboundary.probes import (
    PROBES,
    bootstrap_ci,
    coverage,
    crossover_k,
    delta_se,
    ledger_categories,
    paired_diff_ci,
    pass_at_k,
    pass_at_k_curve,
    run_probes,
    transitions,
)

CONF = Path(__file__).resolve().parents[1] / "rlboundary" / "conf" / "probe"


# ---------------------------------------------------------------------------------- pass@k


def brute_pass_at_k(n: int, c: int, k: int) -> Fraction:
    """Fraction of the k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    hits = sum(any(i < c for i in s) for s in subsets)
    return Fraction(hits, len(subsets))


def test_pass_at_k_matches_enumeration_for_all_small_cases():
    for n in range(1, 9):
        for c in range(n + 1):
            got = pass_at_k(n, c, np.arange(1, n + 1))
            for k in range(1, n + 1):
                assert got[k - 1] == pytest.approx(float(brute_pass_at_k(n, c, k)),
                                                   abs=1e-14), (n, c, k)


def test_pass_at_k_hand_values():
    # n=4, c=1: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5, abs=1e-15)
    # n=4, c=1, k=3: 1 - C(3,3)/C(4,3) = 1 - 1/4
    assert pass_at_k(4, 1, 3) == pytest.approx(0.75, abs=1e-15)
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-15)
    # n=10, c=3, k=4: 1 - C(7,4)/C(10,4) = 1 - 35/210 = 5/6
    assert pass_at_k(10, 3, 4) == pytest.approx(5 / 6, abs=1e-15)
    # n - c < k: every k-subset holds a correct sample, exactly 1
    assert pass_at_k(4, 2, 3) == 1.0
    # c = 0: exactly 0 at every k
    assert np.all(pass_at_k(256, 0, np.arange(1, 257)) == 0.0)


def test_pass_at_k_large_n_exact_against_fractions():
    n = 256
    for c, k in [(1, 1), (1, 128), (3, 17), (7, 200), (128, 64), (250, 5), (1, 255)]:
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12, abs=0), (c, k)
    # tiny values keep their relative precision: 1 sample in 10^6, k=1
    assert pass_at_k(10**6, 1, 1) == pytest.approx(1e-6, rel=1e-12)


def test_pass_at_1_is_accuracy_and_pass_at_n_is_solved():
    rng = np.random.default_rng(1)
    n = rng.integers(1, 64, size=200)
    c = rng.integers(0, n + 1)
    np.testing.assert_allclose(pass_at_k(n, c, 1), c / n, rtol=1e-13, atol=0)
    for ni, ci in zip(n, c):
        assert pass_at_k(int(ni), int(ci), int(ni)) == (1.0 if ci > 0 else 0.0)


def test_pass_at_k_non_decreasing_in_k():
    rng = np.random.default_rng(2)
    n = np.full(300, 64)
    c = rng.integers(0, 65, size=300)
    m = pass_at_k(n, c, np.arange(1, 65))
    assert m.shape == (300, 64)
    assert np.all(np.diff(m, axis=1) >= -1e-15)
    assert np.all((m >= 0) & (m <= 1))


def test_pass_at_k_shapes():
    assert isinstance(pass_at_k(4, 1, 2), float)
    assert pass_at_k([4, 4, 8], [1, 0, 8], 2).shape == (3,)
    assert pass_at_k(4, 1, [1, 2, 3]).shape == (3,)
    assert pass_at_k([4, 4, 8], [1, 0, 8], [1, 2]).shape == (3, 2)
    # scalar n broadcasts against array c
    np.testing.assert_allclose(pass_at_k(4, [0, 1, 4], 2), [0.0, 0.5, 1.0], atol=1e-15)
    # numpy integer and whole-float inputs are accepted
    assert pass_at_k(np.int32(4), np.float64(1.0), np.int64(2)) == pytest.approx(0.5)
    # varying n per problem
    np.testing.assert_allclose(pass_at_k([4, 8], [1, 1], 2), [0.5, 0.25], atol=1e-15)


def test_pass_at_k_errors_name_k_and_n():
    with pytest.raises(ValueError, match=r"k=0"):
        pass_at_k(4, 1, 0)
    with pytest.raises(ValueError, match=r"k=5.*n=4"):
        pass_at_k(4, 1, 5)
    # k fits one problem but not another
    with pytest.raises(ValueError, match=r"k=6.*problem 1.*n=4"):
        pass_at_k([8, 4, 16], [1, 1, 1], [2, 6])
    with pytest.raises(ValueError, match=r"c=5, n=4"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, -1, 1)
    with pytest.raises(ValueError):
        pass_at_k(0, 0, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1.5, 1)


def test_pass_at_k_curve_is_mean_over_problems():
    n, c = [4, 4, 4], [1, 0, 4]
    np.testing.assert_allclose(pass_at_k_curve(n, c, [1, 2, 4]),
                               [(0.25 + 0 + 1) / 3, (0.5 + 0 + 1) / 3, (1 + 0 + 1) / 3],
                               atol=1e-15)
    assert pass_at_k_curve([], [], [1]).shape == (1,)
    assert np.isnan(pass_at_k_curve([], [], [1])[0])


# ------------------------------------------------------------------------------- bootstrap


def _random_table(seed: int, P: int = 200, n: int = 32):
    rng = np.random.default_rng(seed)
    nn = np.full(P, n)
    return nn, rng.binomial(n, rng.beta(0.5, 0.5, size=P))


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_bootstrap_ci_contains_point_and_is_deterministic(method):
    n, c = _random_table(3)
    ks = [1, 2, 4, 8, 16, 32]
    point = pass_at_k_curve(n, c, ks)
    lo, hi = bootstrap_ci(n, c, ks, n_boot=500, seed=7, method=method)
    assert lo.shape == hi.shape == (6,)
    assert np.all(lo <= point) and np.all(point <= hi) and np.all(lo < hi)
    lo2, hi2 = bootstrap_ci(n, c, ks, n_boot=500, seed=7, method=method)
    assert np.array_equal(lo, lo2) and np.array_equal(hi, hi2)
    lo3, _ = bootstrap_ci(n, c, ks, n_boot=500, seed=8, method=method)
    # the percentile band depends on the seed; the t band has no randomness
    assert np.array_equal(lo, lo3) == (method == "t")
    # a wider alpha gives a narrower band
    lo9, hi9 = bootstrap_ci(n, c, ks, n_boot=500, seed=7, alpha=0.5, method=method)
    assert np.all(hi9 - lo9 <= hi - lo)


def test_t_band_wider_than_percentile_at_200_problems_by_t_over_z():
    n, c = _random_table(3)
    lo_t, hi_t = bootstrap_ci(n, c, [1, 4])
    lo_p, hi_p = bootstrap_ci(n, c, [1, 4], n_boot=4000, method="percentile")
    # at 200 problems both agree to a few percent of the width (t_{199} / z = 1.0037)
    np.testing.assert_allclose(hi_t - lo_t, hi_p - lo_p, rtol=0.08)


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_bootstrap_ci_zero_width_for_identical_problems(method):
    n, c = np.full(50, 8), np.full(50, 3)
    ks = [1, 2, 3, 8]
    lo, hi = bootstrap_ci(n, c, ks, n_boot=200, seed=0, method=method)
    point = pass_at_k(8, 3, ks)
    assert np.array_equal(lo, hi)
    assert np.array_equal(lo, point)


@pytest.mark.parametrize("method", ["t", "percentile"])
def test_paired_diff_ci(method):
    n, c = _random_table(4)
    ks = [1, 4, 32]
    d, lo, hi = paired_diff_ci(n, c, n, c, ks, n_boot=300, seed=1, method=method)
    assert np.all(d == 0) and np.all(lo == 0) and np.all(hi == 0)
    n2, c2 = _random_table(5)
    d, lo, hi = paired_diff_ci(n, c, n2, c2, ks, n_boot=300, seed=1, method=method)
    np.testing.assert_allclose(d, pass_at_k_curve(n, c, ks) - pass_at_k_curve(n2, c2, ks),
                               atol=1e-14)
    assert np.all(lo <= d) and np.all(d <= hi)
    with pytest.raises(ValueError):
        paired_diff_ci(n, c, n[:-1], c[:-1], ks)
    with pytest.raises(ValueError, match="k=64"):
        paired_diff_ci(n, c, n2, c2, [64])


# -------------------------------------------------------------------- delta_se / crossover


def _halves():
    """Base: 1 of 8 right on every problem -> pass@k = k/8. Policy: 8/8 or 0/8 -> 0.5 at all k."""
    base_n, base_c = np.full(4, 8), np.full(4, 1)
    pol_n, pol_c = np.full(4, 8), np.array([8, 8, 0, 0])
    return base_n, base_c, pol_n, pol_c


def test_crossover_k_hand_example():
    bn, bc, pn, pc = _halves()
    # base k/8 >= 0.5 first at k = 4 (an exact tie)
    assert crossover_k(bn, bc, pn, pc) == 4
    assert crossover_k(bn, bc, pn, pc, ks=[1, 2, 8]) == 8
    assert crossover_k(bn, bc, pn, pc, ks=[16, 2, 1, 5, 3]) == 5   # order-free; 16 unsupported
    assert crossover_k(bn, bc, pn, pc, ks=[1, 2, 3]) is None
    # base already ahead at k=1
    assert crossover_k(pn, pc, bn, bc) == 1
    # never: policy solves everything, base nothing
    assert crossover_k(np.full(3, 4), np.zeros(3, int), np.full(3, 4), np.full(3, 4)) is None


def test_delta_se_hand_example():
    bn, bc, pn, pc = _halves()
    d = delta_se(bn, bc, pn, pc)             # k=256 > n=8, so k falls back to 8
    assert d.k == 8
    assert d.value == pytest.approx(1.0 - 0.5, abs=1e-15)
    d2 = delta_se(bn, bc, pn, pc, k=2)       # base pass@2 = 2/8
    assert d2.k == 2 and d2.value == pytest.approx(0.25 - 0.5, abs=1e-15)
    value, k = delta_se(bn, bc, pn, pc, k=4)
    assert (value, k) == (pytest.approx(0.0, abs=1e-15), 4)


# ---------------------------------------------------------------------------------- ledger


def test_coverage_and_categories_hand_example():
    base_n, base_c = [4, 4, 4, 4, 4], [0, 1, 3, 0, 2]
    pol_n, pol_c = [8, 8, 8, 8, 8], [0, 0, 4, 5, 1]
    cov = coverage(base_n, base_c, pol_n, pol_c)
    counts = (cov["n_both"], cov["n_base_only"], cov["n_policy_only"], cov["n_neither"])
    assert counts == (2, 1, 1, 1)
    assert cov["n_problems"] == 5
    assert cov["both"] == pytest.approx(0.4) and cov["base_only"] == pytest.approx(0.2)
    assert cov["policy_only"] == pytest.approx(0.2) and cov["neither"] == pytest.approx(0.2)
    cats = ledger_categories(base_n, base_c, pol_n, pol_c)
    assert list(cats) == ["neither", "base_only", "both", "policy_only", "both"]
    with pytest.raises(ValueError):
        coverage([4], [5], [4], [0])
    with pytest.raises(ValueError):
        coverage([4, 4], [1, 1], [4], [1])


def test_transitions_hand_example():
    t = transitions([0, 1, 3, 0, 2, 0], [0, 0, 4, 5, 1, 2])
    assert t == {"gained": 2, "lost": 1, "kept": 2, "never": 1}


def test_transitions_on_shared_problems_and_errors_name_the_side():
    # previous holds a, b, c; current b, c, d: shared b (0 -> 2, gained), c (1 -> 0, lost)
    t = probes.transitions_shared(["a", "b", "c"], [3, 0, 1], ["b", "c", "d"], [2, 0, 5])
    assert t == {"gained": 1, "lost": 1, "kept": 0, "never": 0, "n_shared": 2,
                 "n_left_out": 2}
    # a previous step with fewer problems (probe.limit changed): no error, 1 left out
    t = probes.transitions_shared(["a"], [1], ["a", "b"], [0, 4])
    assert t["lost"] == 1 and t["n_left_out"] == 1
    with pytest.raises(ValueError, match="^current: c must be >= 0"):
        transitions([0, 1], [0, -1])
    with pytest.raises(ValueError, match="^previous: c must hold whole"):
        transitions([0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="previous and current need the same problems"):
        transitions([0, 1], [0])


@pytest.mark.parametrize("n, c, what", [
    ([4, 4], [0.5, 4], "c=0.5"), ([4, 4], [float("nan"), 4], "c=nan"),
    ([4, 4], [5, 4], "0 <= c <= n"), ([0, 4], [0, 4], "n must be >= 1")])
def test_bad_counts_are_rejected_by_every_probe(n, c, what):
    """c = 0.5 used to become 0 (pass@1 0.5, histogram bin 0, 'policy only')."""
    table = {"n": n, "c": c}
    for name in ("pass_at_k", "acc_hist"):
        with pytest.raises(ValueError, match=re.escape(what)):
            PROBES.get(name)(table, None)
    for name in ("coverage", "delta_se", "crossover_k"):
        with pytest.raises(ValueError):
            PROBES.get(name)(table, {"n": [4, 4], "c": [1, 1]})


# ---------------------------------------------------------------------------------- probes


def _tables():
    bn, bc, pn, pc = _halves()
    base = {"n": bn, "c": bc, "c_valid": np.full(4, -1),
            "entropy": np.full(4, 1.0), "mean_len": np.full(4, 10.0),
            "nll_base_sum": np.full(4, 80.0), "n_tokens": np.full(4, 80)}
    cur = {"n": pn, "c": pc, "c_valid": np.array([4, 8, 0, -1]),
           "entropy": np.array([1.0, 2.0, np.nan, 4.0]),
           "mean_len": np.array([10.0, 30.0, 5.0, 0.0]),
           "nll_base_sum": np.array([8.0, 16.0, 0.0, 0.0]), "n_tokens": np.array([8, 8, 0, 0])}
    for table in (base, cur):  # answer diversity columns (probes/diversity.py)
        table.update(answers_distinct=np.array([2, 1, 0, 3]),
                     answers_entropy=np.array([0.5, 0.0, 0.0, 1.0]),
                     answers_distinct_correct=np.array([1, 1, 0, 1]),
                     answers_entropy_correct=np.zeros(4))
    return cur, base


def test_registered_probe_names():
    assert set(PROBES.names()) >= {"pass_at_k", "entropy", "ppl_base", "coverage", "delta_se",
                                   "crossover_k", "acc_hist"}


def test_probes_on_hand_tables():
    cur, base = _tables()
    out = run_probes({"pass_at_k": {"ks": [1, 2, 4, 8, 16, 256], "n_boot": 200},
                      "entropy": {}, "ppl_base": {}, "coverage": {}, "delta_se": {"k": 256},
                      "crossover_k": {}, "acc_hist": {}}, cur, base)
    # ks above n=8 are dropped (8 itself already listed)
    assert {k for k in out if k.startswith("pass@") and "_" not in k} == \
        {"pass@1", "pass@2", "pass@4", "pass@8"}
    for k in (1, 2, 4, 8):
        assert out[f"pass@{k}"] == pytest.approx(0.5)
        assert out[f"pass@{k}_lo"] <= out[f"pass@{k}"] <= out[f"pass@{k}_hi"]
    # valid only on the 3 rows with c_valid >= 0: pass@1 = (4/8 + 1 + 0) / 3
    assert out["valid_pass@1"] == pytest.approx(0.5)
    assert out["valid_pass@8"] == pytest.approx(2 / 3)
    # entropy weighted by n * mean_len = 80, 240, (nan skipped), 0 (skipped)
    assert out["entropy"] == pytest.approx((80 * 1.0 + 240 * 2.0) / 320)
    assert out["ppl_base_pooled"] == pytest.approx(math.exp(24.0 / 16.0))
    assert "ppl_base" not in out  # no per-response columns: the pooled value only
    assert out["coverage/both"] == pytest.approx(0.5)
    assert out["coverage/base_only"] == pytest.approx(0.5)
    assert out["coverage/policy_only"] == 0.0 and out["coverage/neither"] == 0.0
    assert out["gained"] == 0.0 and out["lost"] == 2.0
    assert out["delta_se"] == pytest.approx(0.5) and out["delta_se_k"] == 8.0
    assert out["crossover_k"] == 4.0
    assert out["acc_hist/0"] == 2.0 and out["acc_hist/1"] == 2.0
    assert sum(v for k, v in out.items() if k.startswith("acc_hist/")) == 4
    assert all(isinstance(v, float) for v in out.values())


def test_probes_without_base_or_columns():
    cur, _ = _tables()
    for name in ("coverage", "delta_se", "crossover_k"):
        assert PROBES.get(name)(cur, None) == {}
    assert PROBES.get("entropy")({"n": [4]}, None) == {}
    assert PROBES.get("ppl_base")({"n": [4], "nll_base_sum": [1.0], "n_tokens": [0]}, None) == {}
    out = run_probes([{"name": "pass_at_k", "ks": [1, 2, 4, 256], "n_boot": 10}],
                     {"n": [50, 60], "c": [1, 0]}, None)
    assert "pass@50" in out and "pass@256" not in out and "valid_pass@1" not in out
    out = run_probes(["crossover_k"], cur, {"n": np.full(4, 8), "c": np.zeros(4, int)})
    assert math.isnan(out["crossover_k"])
    with pytest.raises(ValueError):
        run_probes(["coverage"], cur, {"n": [8], "c": [1]})
    with pytest.raises(ValueError, match="repeats"):
        run_probes([("entropy", {}), ("entropy", {})], cur, None)
    with pytest.raises(KeyError, match="unknown probe"):
        run_probes(["nope"], cur, None)


def test_probes_accept_a_dataframe():
    pd = pytest.importorskip("pandas")
    cur, base = _tables()
    a = run_probes(["coverage", "delta_se"], pd.DataFrame(cur), pd.DataFrame(base))
    assert a == run_probes(["coverage", "delta_se"], cur, base)


def test_probe_configs_match_registry():
    omegaconf = pytest.importorskip("omegaconf")
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} == set(PROBES.names())
    cur, base = _tables()
    for f in files:
        cfg = omegaconf.OmegaConf.load(f)
        assert cfg.name == f.stem
        out = run_probes([cfg], cur, base)
        assert out, f.stem


def test_probes_layer_has_no_pandas_or_io():
    src = "\n".join(p.read_text() for p in Path(probes.__file__).parent.glob("*.py"))
    for bad in ("import pandas", "open(", "read_parquet", "import os", "pathlib"):
        assert bad not in src, bad
