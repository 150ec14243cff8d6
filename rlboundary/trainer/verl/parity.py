"""One config, one meaning: what the local engine does with every key translate.py hands verl.

:data:`PARITY` has a row per verl key that :func:`translate.translation` sets: the rlboundary
key it comes from (None where the value is derived, e.g. a file path) and what
``engine=local`` does with it, naming the verl function it calls where there is one.
tests/test_parity.py checks each row against verl 0.9.1: the value verl's composed config holds,
verl's own dataclasses and functions on the same inputs, or a case derived by hand from verl's
source. :data:`DIFFERENT_DEFAULTS` lists, with the reason, every default of
``conf/config.yaml`` that differs from verl's ``ppo_trainer.yaml``; the test compares the rest.
"""

from __future__ import annotations

A, R, C = "actor_rollout_ref.actor", "actor_rollout_ref.rollout", "critic"


def _optim_rows(verl: str, ours: str) -> dict[str, tuple[str, str]]:
    """The rows of one optimizer (the actor's or the critic's): AdamW, verl's schedule, and
    gradient clipping from ``<ours>.grad_clip``."""
    return {**{f"{verl}.optim.{k}": (f"{ours}.optim.{k}", "AdamW")
               for k in ("lr", "betas", "weight_decay")},
            f"{verl}.optim.lr_warmup_steps": (f"{ours}.optim.lr_warmup_steps",
                                              "verl's get_constant_schedule_with_warmup"),
            f"{verl}.optim.clip_grad": (f"{ours}.grad_clip", "clip_grad_norm_ before each step")}

# verl key -> (rlboundary key or None, what engine=local does with it)
PARITY: dict[str, tuple[str | None, str]] = {
    # ---------------------------------------------------------------- algorithm
    "algorithm.adv_estimator": ("algorithm.adv_estimator", "verl's get_adv_estimator_fn"),
    "algorithm.gamma": ("algorithm.gamma", "verl's estimator (AlgoConfig)"),
    "algorithm.lam": ("algorithm.lam", "verl's estimator (AlgoConfig)"),
    "algorithm.norm_adv_by_std_in_grpo": ("algorithm.norm_adv_by_std_in_grpo",
                                          "verl's estimator (AlgoConfig)"),
    "algorithm.use_kl_in_reward": ("algorithm.use_kl_in_reward",
                                   "rewards minus beta x verl's kl_penalty(old, ref)"),
    "algorithm.kl_penalty": ("algorithm.kl_penalty", "verl's kl_penalty"),
    "algorithm.kl_ctrl.type": ("algorithm.kl_ctrl.type", "verl's get_kl_controller"),
    "algorithm.kl_ctrl.kl_coef": ("algorithm.kl_ctrl.kl_coef", "verl's get_kl_controller"),
    "algorithm.kl_ctrl.horizon": ("algorithm.kl_ctrl.horizon", "verl's get_kl_controller"),
    "algorithm.kl_ctrl.target_kl": ("algorithm.kl_ctrl.target_kl", "verl's get_kl_controller"),
    "algorithm.rollout_correction.bypass_mode": (
        "algorithm.rollout_correction.bypass_mode",
        "the sampler's log-probs are the old log-probs; the old log-prob pass is skipped"),
    "algorithm.filter_groups.enable": ("algorithm.filter_groups.enable",
                                       "dynamic sampling (registered group filter)"),
    "algorithm.filter_groups.metric": ("algorithm.filter_groups.metric",
                                       "acc or score per group; other metrics refused"),
    "algorithm.filter_groups.max_num_gen_batches": (
        "algorithm.filter_groups.max_num_gen_batches",
        "rounds of sampling per step at most (0: no cap), as verl's legacy trainer"),
    # ---------------------------------------------------------------- data
    "data.train_files": (None, "the task's train split, read in memory (no parquet)"),
    "data.val_files": (None, "the probe datasets' held-out splits"),
    "data.train_batch_size": ("data.train_batch_size", "prompts per step"),
    "data.max_response_length": ("rollout.response_length", "max new tokens per rollout"),
    "data.seed": ("seed", "the seeded order of the training prompts (DataOrder)"),
    "data.prompt_key": (None, "the task's rendered prompt"),
    "data.reward_fn_key": (None, "the task's name is compute_score's data_source"),
    # ---------------------------------------------------------------- actor
    **{f"{A}.{k}": (f"actor.{k}", "verl's ActorConfig, read by verl's policy loss")
       for k in ("clip_ratio", "clip_ratio_low", "clip_ratio_high", "clip_ratio_c",
                 "loss_agg_mode")},
    f"{A}.ppo_mini_batch_size": ("actor.ppo_mini_batch_size",
                                 "prompts per optimizer step (x rollout.n rows)"),
    f"{A}.ppo_micro_batch_size_per_gpu": ("actor.ppo_micro_batch_size_per_gpu",
                                          "rows per forward/backward"),
    f"{A}.ppo_epochs": ("actor.ppo_epochs", "passes over the batch per step"),
    f"{A}.shuffle": ("actor.shuffle", "mini-batch rows shuffled per step, else in order"),
    f"{A}.entropy_coeff": ("actor.entropy_coeff", "minus coeff x verl's agg_loss(entropy)"),
    f"{A}.use_kl_loss": ("actor.use_kl_loss", "plus coef x verl's agg_loss(kl_penalty)"),
    f"{A}.kl_loss_coef": ("actor.kl_loss_coef", "the KL loss's coefficient"),
    f"{A}.kl_loss_type": ("actor.kl_loss_type", "verl's kl_penalty(type)"),
    f"{A}.policy_loss.loss_mode": ("actor.policy_loss.loss_mode",
                                   "verl's get_policy_loss_fn"),
    **_optim_rows(A, "actor"),
    f"{A}.grad_clip": ("actor.grad_clip", "clip_grad_norm_ before each step"),
    f"{A}.data_loader_seed": ("seed", "seeds the mini-batch shuffle"),
    f"{A}.checkpoint.save_contents": (None, "every checkpoint holds HF weights, optimizer, "
                                            "scheduler and RNG"),
    f"{R}.log_prob_micro_batch_size_per_gpu": ("actor.ppo_micro_batch_size_per_gpu",
                                               "rows per log-prob forward"),
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": (
        "actor.ppo_micro_batch_size_per_gpu", "rows per reference log-prob forward"),
    # ---------------------------------------------------------------- rollout and model
    f"{R}.name": (None, "the hf sampler (sampler.name): same log-prob semantics as vLLM's "
                        "processed logprobs"),
    f"{R}.n": ("rollout.n", "samples per prompt"),
    f"{R}.temperature": ("rollout.temperature", "sampling temperature"),
    f"{R}.top_p": ("rollout.top_p", "nucleus sampling"),
    f"{R}.response_length": ("rollout.response_length", "max new tokens per rollout"),
    f"{R}.seed": ("seed", "seeds each step's sampling (seed, step)"),
    "actor_rollout_ref.model.path": (None, "base.path, or the tiny base it builds"),
    "actor_rollout_ref.model.custom_chat_template": (
        None, "data.chat_template: none, the prompt as rendered; model, the tokenizer's template "
              "(samplers/tokens.py as_chat in the policy worker)"),
    # ---------------------------------------------------------------- critic
    f"{C}.enable": ("critic.enable", "verl's need_critic rule when null"),
    f"{C}.model.path": (None, "the base model with a one-label head, verl's no-dropout config"),
    f"{C}.ppo_mini_batch_size": ("critic.ppo_mini_batch_size", "prompts per critic step"),
    f"{C}.ppo_micro_batch_size_per_gpu": ("critic.ppo_micro_batch_size_per_gpu",
                                          "rows per critic forward/backward"),
    f"{C}.ppo_epochs": ("critic.ppo_epochs", "critic passes per step"),
    f"{C}.shuffle": ("critic.shuffle", "as the actor's (verl: follows actor.shuffle)"),
    f"{C}.cliprange_value": ("critic.cliprange_value", "verl's compute_value_loss"),
    f"{C}.loss_agg_mode": ("critic.loss_agg_mode", "verl's compute_value_loss"),
    **_optim_rows(C, "critic"),
    # ---------------------------------------------------------------- reward
    "reward.custom_reward_function.path": (None, "the same compute_score, called in process"),
    "reward.custom_reward_function.name": (None, "compute_score"),
    "reward.reward_manager.name": ("reward.overlong_buffer.enable",
                                   "dapo: overlong shaping of every scored response"),
    "reward.reward_kwargs.overlong_buffer_cfg.enable": ("reward.overlong_buffer.enable",
                                                        "registered shaper 'overlong'"),
    "reward.reward_kwargs.overlong_buffer_cfg.len": ("reward.overlong_buffer.len",
                                                     "registered shaper 'overlong'"),
    "reward.reward_kwargs.overlong_buffer_cfg.penalty_factor": (
        "reward.overlong_buffer.penalty_factor", "registered shaper 'overlong'"),
    "reward.reward_kwargs.overlong_buffer_cfg.log": (None, "logged as train/ metrics"),
    "reward.reward_kwargs.max_resp_len": ("rollout.response_length", "the shaper's max length"),
    # ---------------------------------------------------------------- trainer
    "trainer.use_v1": (None, "one loop for every algorithm (ReMax's greedy rollout included)"),
    "trainer.checkpoint_callback_class": ("trainer.probe", "a probe worker beside training, "
                                                           "or between steps (sync)"),
    "trainer.total_training_steps": ("trainer.total_training_steps", "steps (from 1)"),
    "trainer.total_epochs": (None, "steps only; epochs of the prompts roll over"),
    "trainer.save_freq": ("trainer.save_freq", "checkpoint and probe every N steps and last"),
    "trainer.test_freq": (None, "cluster.validation: -1 (auto while probes run: the probes "
                                "evaluate), or trainer.save_freq (sampled)"),
    "trainer.val_before_train": (None, "sampled validation on a fresh run only; the base's "
                                       "probe is step 0"),
    f"{R}.val_kwargs.n": ("n", "samples per problem, as the probes"),
    f"{R}.val_kwargs.temperature": ("sampling.temperature", "as the probes"),
    f"{R}.val_kwargs.top_p": ("sampling.top_p", "as the probes"),
    f"{R}.val_kwargs.do_sample": (None, "sampled, as the probes (verl: greedy)"),
    "trainer.critic_warmup": ("trainer.critic_warmup",
                              "actor skipped while critic_warmup > global_step"),
    "trainer.project_name": ("trainer.project_name", "W&B project"),
    "trainer.experiment_name": ("trainer.experiment_name", "W&B run name"),
    "trainer.logger": ("trainer.logger", "console and wandb; others refused"),
    "trainer.default_local_dir": (None, "RUN_DIR/checkpoints"),
    "trainer.resume_mode": ("resume", "auto: newest complete checkpoint; disable: refuse"),
    "trainer.max_actor_ckpt_to_keep": ("trainer.keep_last", "prunes older checkpoints"),
    "trainer.max_critic_ckpt_to_keep": ("trainer.keep_last", "the critic lives in the same "
                                                             "checkpoint"),
}

# rlboundary key -> why its default differs from verl 0.9.1's ppo_trainer.yaml
DIFFERENT_DEFAULTS: dict[str, str] = {
    "algorithm.adv_estimator": "grpo: the demo's algorithm and the study's main one (verl: gae)",
    "algorithm.filter_groups.metric": "acc: DAPO keeps groups whose accuracy varies (verl: "
                                      "reward, a key our reward function does not return)",
    "algorithm.filter_groups.max_num_gen_batches": "4: a laptop step never samples without "
                                                   "bound (verl: 0, no cap)",
    "data.train_batch_size": "32 prompts: the tiny model on 2 CPU cores (the study's recipes "
                             "set verl's scale)",
    "n": "256 samples per problem, the probes' (verl's validation: 1 greedy sample; it runs "
         "sampled like the probes only with cluster.validation=sampled)",
    "sampling.temperature": "the probes' T (verl's validation: 0, greedy)",
    "rollout.response_length": "96 tokens: arithmetic chains are short (verl: 512)",
    "seed": "one training seed (0) for data order, sampling and mini-batches (verl: data.seed "
            "null, data_loader_seed and rollout.seed 42)",
    "actor.ppo_mini_batch_size": "16 prompts: two optimizer steps per batch of 32 (verl: 256)",
    "actor.ppo_micro_batch_size_per_gpu": "32 rows (verl: null, required or dynamic batch "
                                          "size)",
    "actor.optim.lr": "4e-4, chosen on the validation split for the 0.1M-parameter base "
                      "(verl: 1e-6 for 7B models)",
    "actor.optim.lr_warmup_steps": "10 steps (verl: -1, i.e. lr_warmup_steps_ratio 0: none)",
    "rollout.n": "8 samples per prompt: a group for GRPO (verl: 1)",
    "critic.ppo_mini_batch_size": "16 prompts, as the actor (verl: 256)",
    "critic.ppo_micro_batch_size_per_gpu": "32 rows (verl: null)",
    "critic.optim.lr": "1e-3 for the tiny value model (verl: 1e-5)",
    "critic.optim.lr_warmup_steps": "0: no warm-up, what verl's -1 (ratio 0) also gives",
    "trainer.total_training_steps": "200 steps (verl: null, epochs decide)",
    "trainer.save_freq": "100: every checkpoint is probed (verl: -1, no checkpoints)",
    "trainer.project_name": "rlboundary (verl: verl_examples)",
    "trainer.experiment_name": "DATASET_ALGORITHM, e.g. arithmetic_grpo (verl: gsm8k)",
}
