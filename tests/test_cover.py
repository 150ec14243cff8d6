"""cover@τ: hand-computed shares, the Beta(1, k) identity with pass@k, the registered probe."""

from __future__ import annotations

import numpy as np
import pytest

from rlboundary import probes


def test_cover_at_hand_computed():
    # rates 0, 1/4, 1/2, 3/4, 1 on five problems (n = 4)
    n, c = [4] * 5, [0, 1, 2, 3, 4]
    got = probes.cover_at(n, c, [0.01, 0.25, 0.3, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(got, [4 / 5, 4 / 5, 3 / 5, 3 / 5, 2 / 5, 1 / 5])
    # a rate equal to τ after float rounding still reaches it: 3/10 >= 0.3
    assert probes.cover_at([10], [3], [0.3])[0] == 1.0
    assert np.isnan(probes.cover_at([], [], [0.5])[0])


@pytest.mark.parametrize("bad", [[0.0], [1.5], [-0.1]])
def test_cover_at_rejects_tau_outside_the_unit_interval(bad):
    with pytest.raises(ValueError, match="0 < τ <= 1"):
        probes.cover_at([4], [1], bad)


def test_pass_at_k_plugin_is_the_beta_weighted_mean_of_cover():
    """For rates p = c/n, mean_i 1 - (1 - p_i)^k = ∫ k (1 - τ)^(k-1) cover(τ) dτ; cover is a
    step function with jumps at the rates, so the integral is a finite sum."""
    rng = np.random.default_rng(0)
    n = np.full(40, 16)
    c = rng.integers(0, 17, size=40)
    grid = np.arange(0, 17) / 16  # cover is constant on (j/16, (j+1)/16]
    for k in (1, 2, 8, 64):
        w = (1 - grid[:-1]) ** k - (1 - grid[1:]) ** k  # ∫ over each piece of k(1-τ)^(k-1)
        integral = float((w * probes.cover_at(n, c, grid[1:])).sum())
        assert integral == pytest.approx(np.mean(1 - (1 - c / n) ** k), abs=1e-12)


def test_registered_probe_uses_the_configured_grid():
    table = {"n": np.array([8, 8, 8, 8]), "c": np.array([0, 2, 6, 8])}
    out = probes.run_probes([{"name": "cover", "taus": [0.125, 0.5, 1.0]}], table)
    assert out == {"cover@0.125": 0.75, "cover@0.5": 0.5, "cover@1": 0.25}
    assert probes.tau_key(0.25) == "cover@0.25"
