"""Adaptive pass@k: the estimator against hand computation and the full estimator, the stopping
rule, the band's coverage on synthetic problems, keyed sampling, and the probe end to end
(nested samples, tol=0 = the full probe, resume)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from rlboundary.probes import adaptive as A
from rlboundary.probes import pass_at_k, pass_at_k_curve, per_problem, run_probes
from rlboundary.probes.counts import pass_at_k_matrix
from rlboundary.samplers import keyed


def test_predictive_is_the_unbiased_estimator_when_every_problem_has_all_samples():
    rng = np.random.default_rng(0)
    n = np.full(50, 64)
    c = rng.integers(0, 65, 50)
    ks = np.arange(1, 65)
    mean, var = A.predictive(n, c, ks, 64)
    assert np.array_equal(mean, pass_at_k(n, c, ks))      # bit for bit, not approximately
    assert (var == 0).all()
    assert np.array_equal(per_problem(n, c, ks, n_target=64), pass_at_k(n, c, ks))


def test_predictive_by_hand_for_a_point_prior():
    """N=4, 1 of 2 drawn samples correct, p = 1/2 known: the 2 missing samples hold C' ~
    Bin(2, 1/2) successes (1/4, 1/2, 1/4 for 0, 1, 2), so the full probe would see x = 1, 2, 3.
    pass@1 = x/4 -> mean (1/4 + 2/4 * 2 + 3/4) / 4 ... = 1/2, variance Var(C')/16 = 1/32.
    pass@2 = 1 - C(4-x, 2)/6 = 1/2, 5/6, 1 -> mean 1/8 + 5/12 + 1/4 = 19/24. pass@4 = 1."""
    prior = A.Prior(np.array([0.5]), np.array([1.0]))
    mean, var = A.predictive([2], [1], [1, 2, 4], 4, prior)
    assert mean[0] == pytest.approx([0.5, 19 / 24, 1.0], abs=1e-12)
    assert var[0][0] == pytest.approx(1 / 32, abs=1e-12)
    assert var[0][2] == pytest.approx(0.0, abs=1e-12)


def test_prior_recovers_a_two_point_mixture():
    rng = np.random.default_rng(1)
    p = np.where(rng.random(400) < 0.3, 0.1, 0.8)
    n = np.full(400, 64)
    c = rng.binomial(64, p)
    prior = A.fit_prior(n, c)
    inside = lambda lo, hi: (prior.grid > lo) & (prior.grid < hi)
    # the fitted mass, plus the SMOOTH share spread evenly over the grid
    near = lambda lo, hi, mass: prior.weights[inside(lo, hi)].sum() == pytest.approx(
        (1 - A.SMOOTH) * mass + A.SMOOTH * inside(lo, hi).mean(), abs=0.05)
    assert near(0.05, 0.16, 0.3) and near(0.7, 0.9, 0.7)
    assert prior.weights.min() == pytest.approx(A.SMOOTH / A.GRID.size)   # never a zero
    assert prior.weights.sum() == pytest.approx(1.0)


def test_freeze_spends_the_budget_on_the_least_uncertain_problems_only():
    n = np.array([16, 16, 16, 16, 64, 32])
    c = np.array([16, 8, 0, 1, 32, 32])
    none = np.zeros(6, bool)
    assert not A.freeze(n, c, 64, none, 0.0).any()                     # tol 0: stop nothing
    got = A.freeze(n, c, 64, none, 0.5, min_samples=16)
    assert not got[2]                      # never solved: its pass@64 hinges on the rest
    assert not got[4]                      # already has all 64: done, not frozen
    assert got[0] and got[5]               # always solved so far: the first to stop
    assert not A.freeze(n, c, 64, none, 0.5, min_samples=33)[[0, 1, 3]].any()
    # the frozen problems' predictive variance stays within (tol / z)^2 P^2 at every k
    tol = 0.05
    frozen = A.freeze(n, c, 64, none, tol)
    _, var = A.predictive(n[frozen], c[frozen], np.arange(1, 65), 64, A.fit_prior(n, c))
    assert var.sum(axis=0).max() <= (tol / A.Z_STOP) ** 2 * 36 + 1e-12
    assert frozen[frozen | none].sum() >= 1


def _simulate(p, N, R, tol, rng, min_samples=16):
    draws = rng.random((p.size, N)) < p[:, None]
    m, frozen = np.zeros(p.size, int), np.zeros(p.size, bool)
    for r in range(N // R):
        act = ~frozen & (m == r * R)
        if not act.any():
            break
        m[act] += R
        c = np.array([draws[i, :m[i]].sum() for i in range(p.size)])
        frozen = A.freeze(m, c, N, frozen, tol, min_samples=min_samples)
    c = np.array([draws[i, :m[i]].sum() for i in range(p.size)])
    return m, c, draws


def test_band_covers_the_true_pass_at_k_of_synthetic_problems():
    """Known success rates (a third never solvable, the rest spread), adaptive with early
    stops: the 95% band holds the set's true pass@k in ~95% of 120 repetitions."""
    rng = np.random.default_rng(2)
    N, ks = 64, np.array([1, 4, 16, 64])
    hits, used = np.zeros(ks.size), []
    reps = 120
    for _ in range(reps):
        p = np.where(rng.random(80) < 0.3, 0.0, rng.beta(0.7, 0.7, 80))
        m, c, _ = _simulate(p, N, 16, 0.02, rng, min_samples=32)
        used.append(m.sum() / (80 * N))
        _, lo, hi = A.set_band(m, c, ks, N)
        truth = (1 - (1 - p[:, None]) ** ks[None, :]).mean(0)
        hits += (truth >= lo) & (truth <= hi)
    assert np.mean(used) < 0.9                                  # it did stop problems early
    assert (hits / reps >= 0.89).all(), hits / reps


def test_adaptive_curve_stays_near_the_full_curve_of_the_same_samples():
    rng = np.random.default_rng(3)
    p = rng.beta(0.5, 0.5, 300)
    m, c, draws = _simulate(p, 128, 16, 0.01, rng)
    ks = np.arange(1, 129)
    full = pass_at_k_matrix(np.full(300, 128), draws.sum(1), ks).mean(0)
    adaptive = pass_at_k_curve(m, c, ks, n_target=np.full(300, 128))
    assert m.sum() < 0.7 * 300 * 128
    assert np.abs(adaptive - full).max() < 0.01


def test_pass_at_k_probe_reports_adaptive_rows_up_to_n_target():
    cur = {"n": np.array([16, 64, 32, 64]), "c": np.array([16, 3, 30, 0]),
           "n_target": np.array([64] * 4)}
    out = run_probes([("pass_at_k", {"ks": [1, 16, 64]})], cur)
    assert out["pass@64"] == pytest.approx(0.75)    # three problems solved at least once
    assert out["samples_used"] == 176 and out["samples_saved"] == 80
    assert out["pass@64_set_lo"] <= out["pass@64"] <= out["pass@64_set_hi"]
    full = run_probes([("pass_at_k", {"ks": [1, 16, 64]})],
                      {"n": np.full(4, 64), "c": np.array([60, 3, 60, 0]),
                       "n_target": np.full(4, 64)})
    assert "samples_used" not in full and "pass@64" in full


def test_keyed_uniforms_match_the_integer_reference():
    keys = [5, 2**63 + 11]
    rows = keyed.row_keys(9, keys, [range(3), range(7, 9)])
    got = keyed.uniforms(rows, 12).tolist()
    want = [keyed.uniforms_int(9, k, j, 12) for k, js in zip(keys, [range(3), range(7, 9)])
            for j in js]
    assert got == want
    assert all(0.0 <= u < 1.0 for u in got)


def test_keyed_sampling_does_not_depend_on_the_batch(random_tiny_model):
    from rlboundary.samplers import make_sampler

    s = make_sampler("hf", random_tiny_model)
    prompts = ["1+2?", "9-4?", "3*3+1?"]
    keys = [keyed.problem_key(p) for p in prompts]
    kw = dict(max_new_tokens=24, seed=4)
    whole = s.sample(prompts, 32, keys=keys, **kw).texts
    first = s.sample(prompts[:2], 16, keys=keys[:2], **kw).texts
    second = s.sample(prompts[1:], 16, keys=keys[1:], first=16, **kw).texts
    assert first[:16] == whole[:16] and first[16:] == whole[32:48]
    assert second[:16] == whole[48:64] and second[16:] == whole[80:96]


# ------------------------------------------------------------------------------ end to end

QUICK = ["progress=false", "probe.limit=16", "sampling.max_new_tokens=64", "n=32"]
ADAPT = ["probe.adaptive=true", "probe.adaptive_round=8", "probe.adaptive_min_samples=8"]


@pytest.fixture(scope="module")
def sharp(trained_base, tmp_path_factory):
    from tests.test_probe_e2e import sharpened

    return sharpened(trained_base, str(tmp_path_factory.mktemp("sharp") / "step_5"), 3.0)


def _rows(run_dir, step=5):
    return pd.read_parquet(os.path.join(run_dir, "probes", "arithmetic",
                                        f"step_{step:08d}.parquet"))


def _samples(run_dir, step=5):
    return pd.read_parquet(os.path.join(run_dir, "probes", "arithmetic",
                                        f"step_{step:08d}.samples.parquet"))


def test_adaptive_probe_draws_a_prefix_of_the_full_probes_samples(trained_base, sharp,
                                                                  tmp_path):
    from rlboundary.cli import main

    common = [*QUICK, "probe.chunk=4", f"base={trained_base}", f"model={sharp}"]
    assert main(["probe", *common, f"run_dir={tmp_path / 'full'}"]) == 0
    assert main(["probe", *common, *ADAPT, "probe.adaptive_tol=0.2",
                 f"run_dir={tmp_path / 'ad'}"]) == 0
    assert main(["probe", *common, *ADAPT, "probe.adaptive_tol=0",
                 f"run_dir={tmp_path / 'zero'}"]) == 0
    full, ad, zero = (_rows(str(tmp_path / d)) for d in ("full", "ad", "zero"))
    # tol=0: the full probe, sample for sample
    assert (zero["n"] == 32).all() and (zero["n_target"] == 32).all()
    assert list(zero["c"]) == list(full["c"])
    # tol>0: problems stop early, each on a prefix of the full probe's samples. A problem
    # needs a right answer to stop (freeze), and one problem's predictive variance (<= 1/4 per
    # k) is below the budget (0.2 / 2.576)^2 * 16^2 = 1.54, so when any problem is solved in
    # its first round the first candidate stops: true on every CPU's trajectory.
    assert (ad["n"] % 8 == 0).all() and (ad["n_target"] == 32).all()
    fs, as_ = _samples(str(tmp_path / "full")), _samples(str(tmp_path / "ad"))
    first_round = fs[fs["sample"] < 8].groupby("problem_id")["correct"].any()
    assert first_round.any(), "the sharpened model solved nothing in 8 samples: no test"
    assert (ad["n"] < 32).any()
    merged = as_.merge(fs, on=["problem_id", "sample"], suffixes=("", "_full"))
    assert len(merged) == len(as_) == ad["n"].sum()
    assert (merged["text"] == merged["text_full"]).all()
    metrics = pd.read_json(tmp_path / "ad" / "metrics.jsonl", lines=True)
    last = metrics[metrics["step"] == 5].iloc[0]
    assert last["samples_used"] == ad["n"].sum() < 16 * 32
    assert "pass@32" in metrics.columns and "pass@32_set_lo" in metrics.columns


def test_adaptive_probe_resumes_to_identical_rows(trained_base, sharp, tmp_path, monkeypatch):
    from rlboundary.cli import main
    from rlboundary.probing import fanout

    # chunk=1: a round's parts hold 1 * 32 / 8 = 4 problems, so a round has 4 parts
    common = [*QUICK, *ADAPT, "probe.chunk=1", "probe.adaptive_tol=0.2", f"base={trained_base}",
              f"model={sharp}"]
    real, seen = fanout.run_chunks, []

    def counting(worker_kw, jobs, workers, on_result):
        def cb(i, result):
            seen.append(i)
            on_result(i, result)
        real(worker_kw, jobs, workers, cb)

    # How many parts the whole run writes depends on when problems stop (the trajectory):
    # kill after round 1's 4 parts when there are more, else before the last part.
    monkeypatch.setattr(fanout, "run_chunks", counting)
    assert main(["probe", *common, f"run_dir={tmp_path / 'whole'}",
                 f"cache_dir={tmp_path / 'c1'}"]) == 0
    kill_at = min(9, len(seen) - 1) if len(seen) > 5 else len(seen) - 1
    assert kill_at >= 1
    seen.clear()

    def dying(worker_kw, jobs, workers, on_result):
        def cb(i, result):
            if len(seen) == kill_at:
                raise KeyboardInterrupt("killed")
            seen.append(i)
            on_result(i, result)
        real(worker_kw, jobs, workers, cb)

    monkeypatch.setattr(fanout, "run_chunks", dying)
    cut = [f"run_dir={tmp_path / 'cut'}", f"cache_dir={tmp_path / 'c2'}"]
    assert main(["probe", *common, *cut]) == 130  # Ctrl-C: one line, exit 130 (issue 23)
    monkeypatch.setattr(fanout, "run_chunks", real)
    assert main(["probe", *common, *cut]) == 0
    pd.testing.assert_frame_equal(_rows(str(tmp_path / "cut")), _rows(str(tmp_path / "whole")),
                                  check_like=True)
