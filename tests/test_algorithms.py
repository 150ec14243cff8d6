"""RL math: rlboundary's registered functions by hand, and the trainer's calls into verl's
registries against verl's functions called directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlboundary.algorithms import BASELINES, GROUP_FILTERS, REWARD_SHAPERS
from rlboundary.trainer.local.step import compute_advantages


def test_dynamic_sampling_keeps_groups_with_spread():
    metric = np.array([1, 1, 0, 1, 0, 0, 1.0])
    index = np.array([0, 0, 1, 1, 2, 2, 3])
    keep = GROUP_FILTERS.get("nonconstant")(metric, index)
    # group 0 all right, group 2 all wrong: dropped; group 1 mixed and group 3 (one sample) kept
    assert keep.tolist() == [False, False, True, True, False, False, True]


def test_dynamic_sampling_rejects_nan():
    with pytest.raises(ValueError, match="sample 1"):
        GROUP_FILTERS.get("nonconstant")(np.array([1.0, np.nan]), np.array([0, 0]))


def test_overlong_penalty_by_hand():
    # max 20, buffer 4: expected length 16; 17 -> -1/4, 18 -> -2/4, 20 -> -4/4
    out = REWARD_SHAPERS.get("overlong")(torch.ones(5), torch.tensor([10, 16, 17, 18, 20]),
                                         max_resp_len=20, buffer_len=4, penalty_factor=1.0)
    assert out.tolist() == [1.0, 1.0, 0.75, 0.5, 0.0]
    half = REWARD_SHAPERS.get("overlong")(torch.zeros(1), torch.tensor([20]), max_resp_len=20,
                                          buffer_len=4, penalty_factor=0.5)
    assert half.tolist() == [-0.5]
    with pytest.raises(ValueError):
        REWARD_SHAPERS.get("overlong")(torch.ones(1), torch.ones(1), max_resp_len=4,
                                       buffer_len=8, penalty_factor=1.0)


def test_remax_greedy_baseline_broadcasts_per_prompt():
    fn = BASELINES.get("greedy")
    assert fn.rollout == {"n": 1, "temperature": 0.0}
    out = fn(torch.tensor([1.0, 0.0]), np.array([0, 0, 1, 1, 1]))
    assert out.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    with pytest.raises(IndexError):
        fn(torch.tensor([1.0]), np.array([0, 1]))


def _alg(estimator: str, **kw) -> dict:
    return {"adv_estimator": estimator, "gamma": 1.0, "lam": 1.0,
            "norm_adv_by_std_in_grpo": True, "use_kl_in_reward": False, "kl_penalty": "kl",
            **kw}


def _fixed_batch():
    """Two prompts x 3 samples, responses of 2-4 tokens, outcome reward on the last token."""
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1],
                         [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float32)
    scores = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    tlr = torch.zeros_like(mask)
    tlr[torch.arange(6), mask.sum(-1).long() - 1] = scores
    values = torch.linspace(-0.5, 0.5, 24).view(6, 4) * mask
    return {"token_level_rewards": tlr, "response_mask": mask, "values": values,
            "reward_baselines": torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])}, \
        np.array([0, 0, 0, 1, 1, 1])


def test_grpo_by_hand_and_zero_mean_per_group():
    batch, index = _fixed_batch()
    adv, _ = compute_advantages(_alg("grpo"), batch, index)
    # group 0 rewards [1, 0, 0]: mean 1/3, unbiased std 0.57735 -> (1 - 1/3) / std = 1.1547
    assert adv[0, 0].item() == pytest.approx(1.1547, abs=1e-4)
    assert adv[1, 0].item() == pytest.approx(-0.57735, abs=1e-4)
    seq = adv[:, 0]
    assert seq[:3].sum().item() == pytest.approx(0.0, abs=1e-5)
    assert seq[3:].sum().item() == pytest.approx(0.0, abs=1e-5)
    assert (adv * (1 - batch["response_mask"])).abs().sum() == 0  # nothing on padding


def test_rloo_baseline_excludes_the_sample_itself():
    batch, index = _fixed_batch()
    adv, _ = compute_advantages(_alg("rloo"), batch, index)
    # group 0 rewards [1, 0, 0]: baselines mean(0, 0) = 0, mean(1, 0) = 0.5, 0.5
    assert adv[:3, 0].tolist() == pytest.approx([1.0, -0.5, -0.5])
    # group 1 rewards [1, 1, 0]: baselines 0.5, 0.5, 1
    assert adv[3:, 0].tolist() == pytest.approx([0.5, 0.5, -1.0])


@pytest.mark.parametrize("estimator", ["grpo", "rloo", "reinforce_plus_plus",
                                       "reinforce_plus_plus_baseline", "remax", "gae"])
def test_advantages_equal_verl_called_directly(estimator):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos as ca

    batch, index = _fixed_batch()
    ours, our_ret = compute_advantages(_alg(estimator), batch, index)
    tlr, mask = batch["token_level_rewards"], batch["response_mask"]
    cfg = AlgoConfig(gamma=1.0, lam=1.0, adv_estimator=estimator)
    direct = {
        "grpo": lambda: ca.compute_grpo_outcome_advantage(tlr, mask, index),
        "rloo": lambda: ca.compute_rloo_outcome_advantage(tlr, mask, index, config=cfg),
        "reinforce_plus_plus": lambda: ca.compute_reinforce_plus_plus_outcome_advantage(
            tlr, mask, config=cfg),
        "reinforce_plus_plus_baseline": lambda:
            ca.compute_reinforce_plus_plus_baseline_outcome_advantage(tlr, mask, index,
                                                                      config=cfg),
        "remax": lambda: ca.compute_remax_outcome_advantage(tlr, batch["reward_baselines"],
                                                            mask, config=cfg),
        "gae": lambda: ca.compute_gae_advantage_return(tlr, batch["values"], mask, 1.0, 1.0),
    }[estimator]
    adv, ret = direct()
    torch.testing.assert_close(ours, adv)
    torch.testing.assert_close(our_ret, ret)


def test_remax_advantage_by_hand():
    batch, index = _fixed_batch()
    adv, _ = compute_advantages(_alg("remax"), batch, index)
    # reward minus the greedy baseline, on every response token (returns-to-go of an outcome)
    assert adv[0].tolist() == [0.0, 0.0, 0.0, 0.0]          # 1 - 1, padding 0
    assert adv[1].tolist() == [-1.0, -1.0, 0.0, 0.0]        # 0 - 1
    assert adv[3].tolist() == [1.0, 1.0, 1.0, 0.0]          # 1 - 0
