"""The temperature control: bisection on closed-form entropies, and end to end on a checkpoint
whose logits are the base's times 2 (so it *is* the base at T/2, and the control must say so)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from rlboundary.probes import match_temperature, softmax_entropy

LOGITS = np.array([2.0, 1.0, 0.0, -1.0, -3.0])


def test_softmax_entropy_by_hand():
    assert softmax_entropy([0.0, 0.0, 0.0, 0.0], 1.0) == pytest.approx(math.log(4), abs=1e-12)
    p = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()
    assert softmax_entropy([2.0, 0.0], 2.0) == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12)


@pytest.mark.parametrize("scale", [2.0, 0.8, 3.5])
def test_bisection_finds_the_temperature_of_scaled_logits(scale):
    """A policy with logits scale * z sampled at T=1 has the entropy of the base (logits z) at
    T = 1/scale: the bisection must return it."""
    target = softmax_entropy(LOGITS * scale, 1.0)
    t, h, trace = match_temperature(lambda t: softmax_entropy(LOGITS, t), target, 0.05, 2.0,
                                    tol=1e-7)
    assert t == pytest.approx(1 / scale, abs=1e-6)
    assert h == pytest.approx(target, abs=1e-6)
    assert trace[0][0] == 0.05 and trace[1][0] == 2.0 and len(trace) <= 2 + 40


def test_a_target_outside_the_bracket_is_one_clear_error():
    with pytest.raises(ValueError, match="outside"):
        match_temperature(lambda t: softmax_entropy(LOGITS, t), 10.0, 0.05, 2.0)
    with pytest.raises(ValueError, match="lo < hi"):
        match_temperature(lambda t: t, 0.5, 1.0, 1.0)


@pytest.mark.slow
def test_control_finds_both_directions_for_doubled_logits(tmp_path, trained_base,
                                                          base_overrides):
    """End to end: `rlboundary probe model=CKPT control=temperature`, where CKPT is the base
    with its final norm doubled (logits x 2). Its samples at T are the base's at T/2, so at
    the probe's T=1 the study's direction (target=policy: raise the checkpoint's temperature to
    the base's entropy) finds T*=2, and the other (target=base) finds T*=0.5; the report draws
    both; a second call for one direction keeps the other's entry."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlboundary.cli import main
    from rlboundary.results.control import read_control

    ckpt = tmp_path / "global_step_7"
    model = AutoModelForCausalLM.from_pretrained(trained_base)
    with torch.no_grad():
        model.model.norm.weight.mul_(2.0)
    model.save_pretrained(ckpt)
    AutoTokenizer.from_pretrained(trained_base).save_pretrained(ckpt)
    run = tmp_path / "run"
    args = ["probe", f"model={ckpt}", f"base.path={trained_base}", "control=temperature",
            "n=8", "probe.limit=8", "progress=false", f"run_dir={run}",
            "temperature_control.problems=4", "temperature_control.n=4",
            "temperature_control.tol=0.002", "temperature_control.bracket=[0.05,3.0]",
            *base_overrides]
    assert main([*args, "temperature_control.target=both"]) == 0
    info = read_control(run)["arithmetic"]
    assert set(info) == {"policy", "base"}
    for target, t_star in (("policy", 2.0), ("base", 0.5)):
        e = info[target]
        assert e["step"] == 7 and e["temperature"] == 1.0 and e["target"] == target
        assert e["matched_temperature"] == pytest.approx(t_star, rel=0.04), e["trace"]
        assert os.path.basename(e["run_dir"]) == f"{target}_T{e['matched_temperature']:.4f}"
    # the policy control is the checkpoint at T* against the base at T: its run holds both
    policy_run = info["policy"]["run_dir"]
    stored = {f for f in os.listdir(os.path.join(policy_run, "probes", "arithmetic"))
              if f.endswith(".parquet") and "samples" not in f}
    assert stored == {"step_00000000.parquet", "step_00000007.parquet"}
    from rlboundary.results.store import ProbeStore

    temps = [ProbeStore(policy_run, "arithmetic", s).provenance()["sampling"]["temperature"]
             for s in (0, 7)]
    assert temps == [1.0, info["policy"]["matched_temperature"]]
    assert (run / "report" / "arithmetic_control.png").exists()
    # the study's direction alone, again: the base direction's entry stays
    assert main([*args]) == 0
    again = read_control(run)["arithmetic"]
    assert set(again) == {"policy", "base"}
    assert again["policy"]["matched_temperature"] == info["policy"]["matched_temperature"]


def test_a_control_record_of_the_old_shape_reads_as_the_base_direction(tmp_path):
    from rlboundary.results.control import read_control

    (tmp_path / "control.json").write_text(json.dumps(
        {"arithmetic": {"temperature": 1.0, "matched_temperature": 0.5, "step": 3}}))
    assert read_control(tmp_path) == {"arithmetic": {"base": {
        "temperature": 1.0, "matched_temperature": 0.5, "step": 3}}}
    assert read_control(tmp_path / "nothing_here") == {}
