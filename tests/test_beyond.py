"""pass@k beyond n (rlboundary/probes/beyond.py): exact where the samples say all, hand-derived
posterior terms, the fit recovers a known prior, and the band covers synthetic truths at about
its stated rate."""

from __future__ import annotations

import numpy as np
import pytest

from rlboundary.probes.beyond import Prior, fit_prior, predict
from rlboundary.probes.passk import pass_at_k_curve


def test_within_n_the_prediction_is_the_exact_pass_at_k():
    n, c = np.array([4, 4, 8]), np.array([1, 0, 3])
    # by hand: pass@2 = mean(1 - C(3,2)/C(4,2), 0, 1 - C(5,2)/C(8,2)) = (1/2 + 0 + 9/14) / 3
    pred = predict(n, c, [1, 2, 4], n_boot=0)
    assert pred.point[1] == pytest.approx((0.5 + 0 + 9 / 14) / 3, abs=1e-12)
    assert np.array_equal(pred.point, pass_at_k_curve(n, c, [1, 2, 4]))
    assert not pred.predicted.any()
    assert predict(n, c, [8], n_boot=0).predicted.tolist() == [True]   # 8 > min n = 4


def test_beyond_n_the_posterior_terms_by_hand():
    """Uniform prior (a = b = 1): after 0 of 1, the rate's posterior is Beta(1, 2) and
    E[(1 - p)^k] = B(1, 2 + k) / B(1, 2) = 2 / (k + 2), so pass@k = k / (k + 2). With a zero
    atom pi0 = 1/2: P(c = 0 | p ~ U) = 1/2, so P(zero | c = 0) = (1/2) / (1/2 + 1/4) = 2/3 and
    pass@2 = (1/3)(1 - 2/4) = 1/6."""
    for k in (2, 6, 100):
        pred = predict([1], [0], [k], n_boot=0, prior=Prior(0.0, 1.0, 1.0))
        assert pred.point[0] == pytest.approx(k / (k + 2), rel=1e-12)
    assert predict([1], [0], [2], n_boot=0, prior=Prior(0.5, 1.0, 1.0)).point[0] == \
        pytest.approx(1 / 6, rel=1e-12)
    # a solved problem has no zero atom: 1 of 1 -> Beta(2, 1), E[(1-p)^2] = B(2,3)/B(2,1) = 1/6
    assert predict([1], [1], [2], n_boot=0, prior=Prior(0.5, 1.0, 1.0)).point[0] == \
        pytest.approx(5 / 6, rel=1e-12)


def _draw(rng, P: int, n: int, pi0=0.25, a=0.35, b=2.0):
    p = np.where(rng.random(P) < pi0, 0.0, rng.beta(a, b, P))
    return p, rng.binomial(n, p)


def test_the_fit_recovers_a_known_prior():
    rng = np.random.default_rng(0)
    _, c = _draw(rng, 4000, 64)
    prior = fit_prior(np.full(4000, 64), c)
    assert prior.pi0 == pytest.approx(0.25, abs=0.04)
    assert prior.a == pytest.approx(0.35, rel=0.2) and prior.b == pytest.approx(2.0, rel=0.3)
    with pytest.raises(ValueError, match="at least one"):
        fit_prior([], [])


def test_the_band_covers_synthetic_truths_at_about_its_rate():
    """40 sets of 300 problems, 64 samples each, rates from a zero-inflated Beta; the 95% band
    on each set's true pass@k, up to 32x beyond n. Coverage measured when written: 0.90-0.98
    per k (bound 0.85: 3 standard errors of 40 sets below 0.95)."""
    rng = np.random.default_rng(1)
    ks = np.array([128, 512, 2048])
    hits = np.zeros(ks.size)
    reps = 40
    for r in range(reps):
        p, c = _draw(rng, 300, 64)
        truth = (1 - (1 - p[:, None]) ** ks[None, :]).mean(axis=0)
        pred = predict(np.full(300, 64), c, ks, n_boot=30, seed=r)
        assert pred.predicted.all()
        hits += (pred.lo <= truth) & (truth <= pred.hi)
    assert (hits / reps >= 0.85).all(), hits / reps


def test_the_probe_reports_only_the_ks_beyond_n():
    from rlboundary.probes.suite import PROBES

    probe = PROBES.get("pass_at_k_pred")
    out = probe({"n": np.full(40, 16), "c": np.arange(40) % 17}, ks=[8, 16, 64, 512], n_boot=5)
    assert sorted(out) == sorted(f"pass@{k}_pred{s}" for k in (64, 512) for s in ("", "_lo",
                                                                                   "_hi"))
    assert out["pass@64_pred_lo"] <= out["pass@64_pred"] <= out["pass@64_pred_hi"]
    assert out["pass@64_pred"] <= out["pass@512_pred"]
    assert probe({"n": np.full(4, 16), "c": np.ones(4)}, ks=[8]) == {}


def test_the_report_marks_predictions_in_its_table_and_figure(tmp_path):
    import json

    import pandas as pd

    from rlboundary.probes.suite import PROBES
    from rlboundary.report import write_report

    rng = np.random.default_rng(0)
    p = np.where(rng.random(60) < 0.3, 0.0, rng.beta(0.4, 2.0, 60))
    lines = []
    for step in (0, 5):
        c = rng.binomial(32, p)
        df = pd.DataFrame({"problem_id": [f"q{i:03d}" for i in range(60)], "n": 32, "c": c,
                           "dataset": "arith", "step": step})
        path = tmp_path / "probes" / "arith" / f"step_{step:08d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path)
        pred = PROBES.get("pass_at_k_pred")(df, ks=[256, 1024], n_boot=5)
        lines.append(json.dumps({"step": step, "dataset": "arith", **pred}))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    html = write_report(tmp_path).read_text()
    assert "pass@256 (predicted)" in html and "pass@1024 (predicted)" in html
    assert (tmp_path / "report" / "arith_pass_at_k.png").stat().st_size > 5000
