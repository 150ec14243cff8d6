"""rlboundary's config -> verl 0.9.1's ``ppo_trainer`` config for the V1 trainer.

Why: the study's runs are verl runs. A user states the run once, in rlboundary's names (which
follow verl's: ``algorithm.adv_estimator``, ``rollout.n``, ``actor.clip_ratio_high``), and the
same six algorithm files drive both engines. This module turns that config into Hydra overrides
of verl's own ``ppo_trainer.yaml`` and composes it with verl's config module, so every verl
default, interpolation and group choice is verl's, and ``verl.KEY=VALUE`` (the ``verl`` node,
applied last) reaches any key verl has.

What it sets beyond the one-to-one names:
- ``trainer.use_v1=true`` (false for ReMax: V1 never draws its greedy baseline, so ReMax runs
  verl's legacy trainer and is probed after training): only the V1 trainer calls checkpoint
  callbacks; the callback is
  ``rlboundary.trainer.verl.callback.ProbeCallback`` and its settings ride in the config's
  ``rlboundary`` node (the callback receives only the config).
- ``reward.custom_reward_function.{path,name}`` -> ``pkg://rlboundary.tasks.verify`` and
  ``compute_score``: verl imports it by package name, so every node's reward workers find it
  wherever the package is installed (a file path holds only on the node that composed the
  config); verl 0.9.1's ``main_ppo`` ignores the legacy top-level ``custom_reward_function``.
- DAPO: ``reward.reward_manager.name=dapo`` and its overlong shaping under
  ``reward.reward_kwargs`` (absent from verl's defaults, so added with ``++``).
- ``data.chat_template=none``: ``actor_rollout_ref.model.custom_chat_template`` passes our
  templated prompt through unchanged (after the tokenizer's BOS, if any), so training sees the
  token ids the probes measure; ``model`` leaves verl the tokenizer's own template, as the
  probes then apply it.
- With ``cluster.hf_checkpoint=save``, ``hf_model`` joins the actor's ``save_contents`` so each
  ``global_step_N/actor/huggingface`` holds full HF weights for the probes.

Set but not read by verl 0.9.1's V1 trainer (kept for the legacy trainer, and so the config
says what was asked): ``algorithm.filter_groups.max_num_gen_batches`` (V1 warns and keeps
sampling until the batch is full) and ``critic.ppo_micro_batch_size_per_gpu`` (V1's critic
uses dynamic batch sizes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rlboundary.errors import UserError
from rlboundary.hydra_scope import first_line, own_hydra

CALLBACK = "rlboundary.trainer.verl.callback.ProbeCallback"
# Loads the callback's module in every process that imports verl (verl/__init__.py); Ray
# workers get it through the job's runtime_env (see launch.runtime_env).
EXTERNAL_MODULES_ENV = "VERL_USE_EXTERNAL_MODULES"
# Our prompt is already the whole text the model continues: the template passes it through,
# behind the tokenizer's BOS when it has one, as the probes encode it (samplers/tokens.py:
# encode_prompts); verl tokenizes the rendered template with add_special_tokens=False.
RAW_CHAT_TEMPLATE = "{% if bos_token %}{{ bos_token }}{% endif %}{{ messages[0].content }}"

_ACTOR_SAME = ("ppo_mini_batch_size", "ppo_micro_batch_size_per_gpu", "ppo_epochs", "shuffle",
               "clip_ratio", "clip_ratio_low", "clip_ratio_high", "clip_ratio_c",
               "loss_agg_mode", "entropy_coeff", "use_kl_loss", "kl_loss_coef", "kl_loss_type")
_ALGO_SAME = ("adv_estimator", "gamma", "lam", "norm_adv_by_std_in_grpo", "use_kl_in_reward",
              "kl_penalty")
_OPTIM = ("lr", "betas", "weight_decay", "lr_warmup_steps")
_CRITIC_SAME = ("enable", "ppo_mini_batch_size", "ppo_micro_batch_size_per_gpu", "ppo_epochs",
                "shuffle", "cliprange_value", "loss_agg_mode")


def reward_function_path() -> str:
    """Where verl loads ``compute_score`` from (``reward.custom_reward_function.path``): its
    module as a ``pkg://`` path (verl's ``load_extern_object`` imports it by name)."""
    from rlboundary.tasks.verify import compute_score

    return f"pkg://{compute_score.__module__}"


def data_files(cfg: Mapping[str, Any]) -> tuple[str, list[str]]:
    """(train parquet, [test parquet per probe dataset]) under ``cluster.data_dir``, as
    ``rlboundary data prepare NAME --out DATA_DIR/NAME`` writes them."""
    root = os.path.abspath(cfg["cluster"]["data_dir"])
    train = os.path.join(root, cfg["data"]["name"], "train.parquet")
    names = list(cfg["probe"]["datasets"])
    return train, [os.path.join(root, name, "test.parquet") for name in names]


def translation(cfg: Mapping[str, Any], model_path: str) -> dict[str, Any]:
    """{verl dotted key: value} for rlboundary's plain config ``cfg`` (the CLI's, resolved)
    training ``model_path``. Keys verl's defaults lack start with ``++``.

    Raises ``UserError`` for a setting verl cannot express (a dynamic-sampling filter other
    than verl's non-constant-reward rule).
    """
    algo, tr = cfg["algorithm"], cfg["trainer"]
    if algo["filter_groups"]["enable"] and algo["filter_groups"]["filter"] != "nonconstant":
        raise UserError("engine=verl: verl's dynamic sampling keeps groups with non-constant "
                        f"rewards only; algorithm.filter_groups.filter="
                        f"{algo['filter_groups']['filter']} is the local engine's")
    out: dict[str, Any] = {f"algorithm.{k}": algo[k] for k in _ALGO_SAME}
    out.update({f"algorithm.kl_ctrl.{k}": v for k, v in algo["kl_ctrl"].items()})
    out["algorithm.rollout_correction.bypass_mode"] = algo["rollout_correction"]["bypass_mode"]
    fg = algo["filter_groups"]
    out.update({"algorithm.filter_groups.enable": fg["enable"],
                "algorithm.filter_groups.metric": fg["metric"],
                "algorithm.filter_groups.max_num_gen_batches": fg["max_num_gen_batches"]})
    out.update(_data(cfg))
    out.update(_actor_rollout(cfg, model_path))
    out.update({f"critic.{k}": cfg["critic"][k] for k in _CRITIC_SAME})
    out.update({f"critic.optim.{k}": cfg["critic"]["optim"][k] for k in _OPTIM})
    out["critic.optim.clip_grad"] = cfg["critic"]["grad_clip"]
    out["critic.model.path"] = model_path
    out.update(_reward(cfg))
    out.update(_trainer(cfg))
    out["trainer.max_actor_ckpt_to_keep"] = tr["keep_last"]
    out["trainer.max_critic_ckpt_to_keep"] = tr["keep_last"]
    return out


def _data(cfg: Mapping[str, Any]) -> dict[str, Any]:
    train, tests = data_files(cfg)
    return {"data.train_files": train, "data.val_files": tests,
            "data.train_batch_size": cfg["data"]["train_batch_size"],
            "data.max_response_length": cfg["rollout"]["response_length"],
            "data.seed": cfg["seed"], "data.prompt_key": "prompt",
            "data.reward_fn_key": "data_source"}


def _actor_rollout(cfg: Mapping[str, Any], model_path: str) -> dict[str, Any]:
    actor, ro = cfg["actor"], cfg["rollout"]
    a = "actor_rollout_ref.actor"
    out: dict[str, Any] = {f"{a}.{k}": actor[k] for k in _ACTOR_SAME}
    out[f"{a}.policy_loss.loss_mode"] = actor["policy_loss"]["loss_mode"]
    out.update({f"{a}.optim.{k}": actor["optim"][k] for k in _OPTIM})
    out[f"{a}.optim.clip_grad"] = actor["grad_clip"]   # the engine workers' key
    out[f"{a}.grad_clip"] = actor["grad_clip"]         # the legacy workers' key
    out[f"{a}.data_loader_seed"] = cfg["seed"]
    if cfg["cluster"]["hf_checkpoint"] == "save":
        out[f"{a}.checkpoint.save_contents"] = ["model", "optimizer", "extra", "hf_model"]
    micro = actor["ppo_micro_batch_size_per_gpu"]
    out["actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu"] = micro
    out["actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu"] = micro
    r = "actor_rollout_ref.rollout"
    out[f"{r}.name"] = "vllm"  # verl leaves it unset (???); verl.KEY=... may pick sglang
    out.update({f"{r}.n": ro["n"], f"{r}.temperature": ro["temperature"],
                f"{r}.top_p": ro["top_p"], f"{r}.response_length": ro["response_length"],
                f"{r}.seed": cfg["seed"]})
    out["actor_rollout_ref.model.path"] = model_path
    if cfg["data"]["chat_template"] == "none":  # model: verl applies the tokenizer's own
        out["actor_rollout_ref.model.custom_chat_template"] = RAW_CHAT_TEMPLATE
    return out


def _reward(cfg: Mapping[str, Any]) -> dict[str, Any]:
    over = cfg["reward"]["overlong_buffer"]
    out: dict[str, Any] = {"reward.custom_reward_function.path": reward_function_path(),
                           "reward.custom_reward_function.name": "compute_score",
                           "reward.reward_manager.name": "dapo" if over["enable"] else "naive"}
    if over["enable"]:
        out.update({"++reward.reward_kwargs.overlong_buffer_cfg.enable": True,
                    "++reward.reward_kwargs.overlong_buffer_cfg.len": over["len"],
                    "++reward.reward_kwargs.overlong_buffer_cfg.penalty_factor":
                        over["penalty_factor"],
                    "++reward.reward_kwargs.overlong_buffer_cfg.log": True,
                    "++reward.reward_kwargs.max_resp_len": cfg["rollout"]["response_length"]})
    return out


def _trainer(cfg: Mapping[str, Any]) -> dict[str, Any]:
    tr = cfg["trainer"]
    logger = [b for b in tr["logger"] if b in ("console", "wandb")] + ["file"]
    # verl 0.9.1's V1 trainer never draws ReMax's greedy baseline; its legacy trainer does
    return {"trainer.use_v1": cfg["algorithm"]["adv_estimator"] != "remax",
            "trainer.checkpoint_callback_class": CALLBACK,
            "trainer.total_training_steps": tr["total_training_steps"],
            # epochs never end a run before its steps (verl's default 30 epochs of a filtered
            # Omni-MATH train set can be 420 steps, not 450)
            "trainer.total_epochs": 1_000_000,
            "trainer.save_freq": tr["save_freq"] or -1,
            **_validation(cfg),
            "trainer.critic_warmup": tr["critic_warmup"],
            "trainer.project_name": tr["project_name"],
            "trainer.experiment_name": tr["experiment_name"],
            "trainer.logger": logger,
            "trainer.default_local_dir": os.path.join(os.path.abspath(cfg["run_dir"]),
                                                      "checkpoints"),
            "trainer.resume_mode": "auto" if cfg["resume"] == "auto" else "disable"}


def validation_mode(cfg: Mapping[str, Any]) -> str:
    """``off`` or ``sampled``: ``cluster.validation``, with ``auto`` read as off while the probes
    run (they are the run's evaluation) and sampled when ``trainer.probe=off``."""
    mode = cfg["cluster"]["validation"]
    if mode == "auto":
        return "off" if cfg["trainer"]["probe"] != "off" else "sampled"
    return mode


def resuming(cfg: Mapping[str, Any]) -> bool:
    """Whether the run continues from a checkpoint already in ``RUN_DIR/checkpoints``."""
    ckpts = os.path.join(cfg["run_dir"], "checkpoints")
    return cfg["resume"] == "auto" and os.path.isdir(ckpts) and any(
        name.startswith("global_step_") for name in os.listdir(ckpts))


def _validation(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """verl's own validation: off (``test_freq=-1``, nothing before training), or at every save
    sampled like the probes (``n``, ``sampling.temperature``, ``sampling.top_p``; its length is
    verl's training ``response_length``), before training only on a fresh run: a resumed run's
    step was validated when it was saved. Its metrics keep verl's names
    (``val-core/<data>/acc/mean@N``), apart from the probes' ``pass@k``."""
    v = "actor_rollout_ref.rollout.val_kwargs"
    out = {f"{v}.n": cfg["n"], f"{v}.temperature": cfg["sampling"]["temperature"],
           f"{v}.top_p": cfg["sampling"]["top_p"], f"{v}.do_sample": True}
    if validation_mode(cfg) == "off":
        return {**out, "trainer.test_freq": -1, "trainer.val_before_train": False}
    return {**out, "trainer.test_freq": cfg["trainer"]["save_freq"] or -1,
            "trainer.val_before_train": not resuming(cfg)}


def flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": leaf} for a nested mapping; lists are leaves."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def render(value: Any) -> str:
    """``value`` in Hydra's override grammar (the inverse of its parser for these types).

    Raises ``UserError`` for a string holding a quote or backslash (Hydra's escaping rules for
    those depend on their position; no verl setting needs them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if "'" in value or "\\" in value:
            raise UserError(f"engine=verl: cannot pass the string {value!r} to verl (quote or "
                            "backslash)")
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(render(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{render(v)}" for k, v in value.items()) + "}"
    raise UserError(f"engine=verl: cannot pass {type(value).__name__} {value!r} to verl")


def overrides(cfg: Mapping[str, Any], model_path: str) -> list[str]:
    """The Hydra overrides of verl's ``ppo_trainer``: the translation, then ``cfg["verl"]``
    (a recipe's ``verl:`` node and ``verl.KEY=VALUE`` on the command line), which wins."""
    pairs = list(translation(cfg, model_path).items()) + list(flatten(cfg["verl"]).items())
    return [f"{key}={render(value)}" for key, value in pairs]


def compose_verl(cfg: Mapping[str, Any], model_path: str, extra: Mapping[str, Any]):
    """verl's composed ``ppo_trainer`` DictConfig for ``cfg``, with an ``rlboundary`` node
    holding ``extra`` (what the checkpoint callback needs). Raises ``UserError`` with Hydra's
    first line when an override names no verl key or does not parse."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    try:
        with own_hydra(), initialize_config_module("verl.trainer.config", version_base=None):
            out = compose("ppo_trainer", overrides=overrides(cfg, model_path))
    except (HydraException, OmegaConfBaseException) as e:
        raise UserError(f"engine=verl: verl's config rejects a setting: {first_line(e)}"
                        ) from None
    with open_dict(out):
        out.rlboundary = OmegaConf.create(dict(extra))
    return out


def validate(verl_cfg) -> dict[str, bool]:
    """verl's own ``validate_config`` with its ``need_reference_policy`` / ``need_critic``
    flags (CPU only; batch-size divisibility over ``n_gpus_per_node`` x ``nnodes``). Returns
    the flags; raises ``UserError`` with verl's message when verl rejects the config."""
    import warnings

    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # need_critic warns that non-GAE runs have no critic
        roles = {"use_reference_policy": bool(need_reference_policy(verl_cfg)),
                 "use_critic": bool(need_critic(verl_cfg))}
        try:
            validate_config(verl_cfg, **roles)
        except (AssertionError, ValueError) as e:
            raise UserError(f"engine=verl: verl's validate_config rejects the config: "
                            f"{' '.join(str(e).split())}") from None
    return roles
