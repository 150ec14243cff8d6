"""RL math that verl's `core_algos` lacks, registered by name (DAPO's dynamic sampling and
overlong shaping, ReMax's greedy baseline).

Layer rule: numpy, torch and `verl.trainer.ppo.core_algos` only; nothing here knows of Ray,
models or files. Advantages, policy losses, KL penalties and loss aggregation that verl already
registers (GAE, GRPO, RLOO, REINFORCE++, ReMax's advantage, the clipped PPO loss, `agg_loss`,
`kl_penalty`) are called from verl's own registries by the trainer, never rewritten here.

Three extension points, one registry each:

* :data:`GROUP_FILTERS` ``fn(metric (B,), index (B,)) -> keep (B,) bool``: which rollout groups
  enter the update (``algorithm.filter_groups``);
* :data:`REWARD_SHAPERS` ``fn(scores (B,), response_length (B,), **params) -> (B,)``: outcome
  reward shaping applied before advantages (``reward.shaping``);
* :data:`BASELINES` ``fn(baseline_scores (P,), index (B,)) -> (B,)`` with a ``rollout`` attribute
  saying which extra rollout it needs (``algorithm.baseline``; verl's ``reward_baselines``).

Adding an algorithm is one ``conf/algorithm/<name>.yaml``; a new file here only when verl lacks
the math.
"""

from __future__ import annotations

from rlboundary.algorithms import dynamic_sampling, overlong, remax  # noqa: F401  (register)
from rlboundary.algorithms.registries import BASELINES, GROUP_FILTERS, REWARD_SHAPERS

__all__ = ["BASELINES", "GROUP_FILTERS", "REWARD_SHAPERS"]
