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
def test_control_finds_half_the_temperature_for_doubled_logits(tmp_path, trained_base,
                                                               base_overrides):
    """End to end: `rlboundary probe model=CKPT control=temperature`, where CKPT is the base
    with its final norm doubled (logits x 2): its samples at T=1 are the base's at T=0.5, so
    the matched temperature is 0.5 and the report draws the control."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlboundary.cli import main

    ckpt = tmp_path / "global_step_7"
    model = AutoModelForCausalLM.from_pretrained(trained_base)
    with torch.no_grad():
        model.model.norm.weight.mul_(2.0)
    model.save_pretrained(ckpt)
    AutoTokenizer.from_pretrained(trained_base).save_pretrained(ckpt)
    run = tmp_path / "run"
    rc = main(["probe", f"model={ckpt}", f"base.path={trained_base}", "control=temperature",
               "n=8", "probe.limit=8", "progress=false", f"run_dir={run}",
               "temperature_control.problems=4", "temperature_control.n=4",
               "temperature_control.tol=0.002", *base_overrides])
    assert rc == 0
    info = json.loads((run / "control.json").read_text())["arithmetic"]
    assert info["step"] == 7 and info["temperature"] == 1.0
    assert info["matched_temperature"] == pytest.approx(0.5, abs=0.02), info["trace"]
    assert os.path.exists(info["run_dir"])
    assert (run / "report" / "arithmetic_control.png").exists()
