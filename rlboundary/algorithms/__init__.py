"""RL math that verl's `core_algos` lacks, registered by name (e.g. DAPO's dynamic sampling).

Layer rule: torch and `verl.trainer.ppo.core_algos` only; nothing here knows of Ray or files.
Advantages and policy losses that verl already registers (GRPO, RLOO, REINFORCE++, ReMax, GAE,
the clipped PPO loss) are used from verl's own registries, never rewritten here.
"""
