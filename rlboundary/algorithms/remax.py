"""ReMax's baseline: the reward of a greedy response to the same prompt.

Source: Li et al., "ReMax: A Simple, Effective, and Efficient Reinforcement Learning Method for
Aligning Large Language Models" (arXiv 2310.10505), algorithm 1. verl's advantage
(``core_algos.compute_remax_outcome_advantage``) takes the baseline as ``reward_baselines (B,)``;
its trainer draws the greedy response in the loop. Here the broadcast from one greedy score per
prompt to its samples is the registered function, and ``rollout`` tells the trainer which extra
rollout to draw, so no trainer code knows the algorithm's name.
"""

from __future__ import annotations

import numpy as np
import torch

from rlboundary.algorithms.registries import BASELINES


@BASELINES.register("greedy")
def greedy_baseline(baseline_scores: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """``baseline_scores (P,)`` (one greedy reward per prompt) and ``index (B,)`` (each sample's
    prompt position in ``0..P-1``) -> ``reward_baselines (B,)``.

    Raises ``IndexError`` when an index points past the prompts.
    """
    index = torch.as_tensor(np.asarray(index, dtype=np.int64))
    if len(index) and int(index.max()) >= len(baseline_scores):
        raise IndexError(f"index {int(index.max())} but only {len(baseline_scores)} baselines")
    return baseline_scores[index].to(torch.float32)


greedy_baseline.rollout = {"n": 1, "temperature": 0.0}
