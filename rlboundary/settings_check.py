"""Type and range checks of the main settings, run by the CLI after Hydra composes the config:
a wrong value is one line naming the key and what it expects (a UserError: exit 2), instead of
an exception deep inside a run. Names follow conf/config.yaml; algorithm files may change the
values but not their types.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from rlboundary.errors import UserError

# verl's ActorConfig accepts these loss aggregation modes.
_AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean",
              "seq-mean-token-sum-norm")

_CHECKS = (
    ("n", int, lambda v: v >= 1, "a whole number >= 1"),
    ("seed", int, lambda v: True, "a whole number"),
    ("sampling.temperature", float, lambda v: v >= 0, "a number >= 0"),
    ("sampling.top_p", float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("sampling.max_new_tokens", int, lambda v: v >= 1, "a whole number >= 1"),
    ("probe.limit", int, lambda v: v >= 1, "null or a whole number >= 1"),
    ("probe.chunk", int, lambda v: v >= 1, "a whole number >= 1"),
    ("step", int, lambda v: v >= 0, "null or a whole number >= 0"),
    ("eval_samples", int, lambda v: v >= 1, "a whole number >= 1"),
    ("force", bool, lambda v: True, "true or false"),
    ("progress", bool, lambda v: True, "true or false"),
    # training (rlboundary train / demo)
    ("engine", str, lambda v: v in ("local", "verl"), "local or verl"),
    ("resume", str, lambda v: v in ("auto", "disable"), "auto or disable"),
    ("verify.max_workers", (int, str), lambda v: v == "auto" or (isinstance(v, int) and v >= 1),
     "auto or a whole number >= 1"),
    ("data.train_batch_size", int, lambda v: v >= 1, "a whole number >= 1"),
    ("rollout.n", int, lambda v: v >= 1, "a whole number >= 1"),
    ("rollout.temperature", float, lambda v: v > 0, "a number > 0"),
    ("rollout.top_p", float, lambda v: 0 < v <= 1, "a number in (0, 1]"),
    ("rollout.response_length", int, lambda v: v >= 1, "a whole number >= 1"),
    ("actor.optim.lr", float, lambda v: v >= 0, "a number >= 0"),
    ("actor.grad_clip", float, lambda v: v > 0, "a number > 0"),
    ("actor.ppo_mini_batch_size", int, lambda v: v >= 1, "a whole number >= 1 (prompts)"),
    ("actor.ppo_micro_batch_size_per_gpu", int, lambda v: v >= 1, "a whole number >= 1"),
    ("actor.ppo_epochs", int, lambda v: v >= 1, "a whole number >= 1"),
    ("actor.clip_ratio_low", float, lambda v: 0 <= v < 1, "a number in [0, 1)"),
    ("actor.clip_ratio_high", float, lambda v: v >= 0, "a number >= 0"),
    ("actor.loss_agg_mode", str, lambda v: v in _AGG_MODES, " | ".join(_AGG_MODES)),
    ("actor.use_kl_loss", bool, lambda v: True, "true or false"),
    ("algorithm.use_kl_in_reward", bool, lambda v: True, "true or false"),
    ("trainer.total_training_steps", int, lambda v: v >= 0, "a whole number >= 0"),
    ("trainer.save_freq", int, lambda v: v >= 0, "a whole number >= 0 (0: no checkpoints)"),
    ("trainer.keep_last", int, lambda v: v >= 1, "null or a whole number >= 1"),
    ("trainer.probe", str, lambda v: v in ("async", "sync", "after", "off"),
     "async, sync, after (engine=verl) or off"),
    ("cluster.probe_gpus", int, lambda v: v >= 0, "a whole number >= 0"),
    ("cluster.hf_checkpoint", str, lambda v: v in ("save", "merge"), "save or merge"),
    ("data.chat_template", str, lambda v: v in ("none", "model"), "none or model"),
    ("cluster.validation", str, lambda v: v in ("auto", "off", "sampled"),
     "auto, off or sampled"),
    ("dry_run", bool, lambda v: True, "true or false"),
    ("control", str, lambda v: v == "temperature", "null or temperature"),
    ("temperature_control.target", str, lambda v: v in ("policy", "base", "both"),
     "policy, base or both"),
    ("temperature_control.problems", int, lambda v: v >= 1, "a whole number >= 1"),
    ("temperature_control.n", int, lambda v: v >= 1, "a whole number >= 1"),
    ("temperature_control.tol", float, lambda v: v > 0, "a number > 0"),
)


def check_settings(cfg: DictConfig) -> None:
    """Check the main settings' types and ranges: a bad value is one line naming the key and
    what it expects (UserError). Nulls are allowed where the config's default is null."""
    for key, typ, ok, expects in _CHECKS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        good = isinstance(value, typ) and not (typ is int and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            good = True
        if not good or not ok(value):
            raise UserError(f"bad setting {key}={value!r}: expected {expects}")
