"""engine=local against verl 0.9.1, key by key (issue 22): the five places they differed, each
checked against verl's own function or a case derived by hand from verl's source."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlboundary.tasks import TASKS
from rlboundary.tasks.schema import Record
from rlboundary.trainer.local import step as S
from rlboundary.trainer.local.worker import CRITIC_CONFIG, _adamw, load_critic


def _lrs(warmup: int, updates: int) -> list[float]:
    """The learning rate each of ``updates`` optimizer steps runs at (base lr 1)."""
    opt, sched = _adamw([torch.nn.Parameter(torch.zeros(1))],
                        {"lr": 1.0, "betas": [0.9, 0.999], "weight_decay": 0.0,
                         "lr_warmup_steps": warmup})
    out = []
    for _ in range(updates):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_is_verls_zero_indexed_schedule():
    from verl.utils.torch_functional import get_constant_schedule_with_warmup

    assert _lrs(3, 5) == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 1.0])  # by hand, from verl
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_constant_schedule_with_warmup(opt, 3)
    verl = []
    for _ in range(5):
        verl.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert _lrs(3, 5) == verl
    assert _lrs(0, 2) == [1.0, 1.0]  # no warm-up: the base lr from the first update


def test_critic_has_no_dropout_like_verls(random_tiny_model):
    critic = load_critic(random_tiny_model)
    for key, value in CRITIC_CONFIG.items():
        assert getattr(critic.config, key) == value
    critic.train()
    ids = torch.tensor([[1, 5, 7, 9, 11]])
    a, b = critic(input_ids=ids).logits, critic(input_ids=ids).logits
    assert torch.equal(a, b)  # train mode, yet two passes agree: no dropout left
    critic.eval()
    assert torch.equal(critic(input_ids=ids).logits, a)


@pytest.mark.parametrize("critic_warmup, first_actor_step", [(0, 1), (1, 1), (2, 2), (5, 5)])
def test_critic_warmup_counts_steps_as_verl(critic_warmup, first_actor_step):
    """verl: ``if critic_warmup > global_steps: skip the actor`` with global_steps from 1."""
    updates = [s for s in range(1, 8) if S.updates_actor(s, critic_warmup)]
    assert updates[0] == first_actor_step
    assert updates == [s for s in range(1, 8) if not critic_warmup > s]


def test_shuffle_defaults_follow_verl():
    from rlboundary.commands import compose

    cfg = compose([])
    assert cfg.actor.shuffle is False  # verl: actor_rollout_ref.actor.shuffle: false
    assert compose(["actor.shuffle=true"]).critic.shuffle is True  # critic follows the actor
    assert compose(["actor.shuffle=true", "critic.shuffle=false"]).critic.shuffle is False


def _remax_ctx(lengths: list[int], overlong: bool) -> S.StepContext:
    """A step context whose worker answers every prompt with "5" in ``lengths[i]`` tokens."""
    cfg = {"rollout": {"top_p": 1.0, "response_length": 96},
           "reward": {"overlong_buffer": {"enable": overlong, "len": 16, "penalty_factor": 1.0}},
           "algorithm": {"baseline": "greedy"}}

    def call(method, prompts, n, **kw):
        assert method == "generate" and n == 1 and kw["temperature"] == 0.0
        return {"texts": ["<answer>5</answer>"] * len(prompts),
                "response_ids": [np.zeros(lengths[i], np.int64) for i in range(len(prompts))]}

    return S.StepContext(cfg=cfg, call=call, task=TASKS.get("arithmetic"), data=None, pad_id=0)


def test_remax_baseline_is_overlong_shaped_like_the_samples():
    records = [Record(id=f"p{i}", problem="2+3", answer="5", split="train") for i in range(2)]
    kept = {"uid": ["a", "a", "b", "b"], "records": [records[0]] * 2 + [records[1]] * 2}
    # greedy responses of 90 and 40 tokens: 90 exceeds 96 - 16 = 80 by 10 -> 1 - 10/16
    got = S.baseline_rewards(_remax_ctx([90, 40], overlong=True), kept, step=1)
    assert got.tolist() == pytest.approx([0.375, 0.375, 1.0, 1.0])
    same = S.shaped(_remax_ctx([90, 40], True).cfg, torch.tensor([1.0, 1.0]),
                    torch.tensor([90.0, 40.0]))
    assert same.tolist() == pytest.approx([0.375, 1.0])  # the samples' own shaping
    plain = S.baseline_rewards(_remax_ctx([90, 40], overlong=False), kept, step=1)
    assert plain.tolist() == [1.0, 1.0, 1.0, 1.0]


# ------------------------------------------------------------------------------ the parity table
ALGORITHMS = ("ppo", "grpo", "rloo", "reinforce_pp", "remax", "dapo")
# Rows whose verl value is derived from ours rather than copied: ours -> verl's
DERIVED = {
    "reward.reward_manager.name": lambda on: "dapo" if on else "naive",
    "trainer.checkpoint_callback_class": None, "trainer.save_freq": lambda f: f or -1,
    "trainer.logger": lambda b: [*b, "file"],
    "trainer.resume_mode": lambda r: r,
}


def _py(value):
    """A config node as plain Python (a leaf as it is)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _plain(overrides: list[str]) -> dict:
    from rlboundary.commands import compose, plain

    return plain(compose(overrides))


@pytest.fixture(scope="module")
def composed():
    """{algorithm: (our plain config, verl's composed config for it)}."""
    from rlboundary.trainer.verl.translate import compose_verl

    out = {}
    for name in ALGORITHMS:
        cfg = _plain([f"algorithm={name}"])
        out[name] = cfg, compose_verl(cfg, "/models/base", {})
    return out


def test_every_translated_key_has_a_row():
    from rlboundary.trainer.verl.parity import PARITY
    from rlboundary.trainer.verl.translate import translation

    keys = set()
    for name in ALGORITHMS:
        keys |= {k.removeprefix("++") for k in translation(_plain([f"algorithm={name}"]), "/m")}
    assert keys == set(PARITY)


def test_every_row_reaches_verl_with_our_value(composed):
    from omegaconf import OmegaConf

    from rlboundary.trainer.verl.parity import PARITY

    checked = 0
    for cfg, verl_cfg in composed.values():
        for verl_key, (ours, _) in PARITY.items():
            derive = DERIVED.get(verl_key, lambda v: v)
            if ours is None or derive is None:
                continue
            if verl_key.startswith("reward.reward_kwargs") and not cfg["reward"][
                    "overlong_buffer"]["enable"]:
                continue  # verl's reward kwargs exist only for the dapo reward manager
            value = _py(OmegaConf.select(verl_cfg, verl_key))
            want = derive(_py(OmegaConf.select(OmegaConf.create(cfg), ours)))
            assert value == want, (verl_key, ours)
            checked += 1
    assert checked > 6 * 50


def test_local_actor_and_algorithm_configs_are_verls(composed):
    """The dataclasses the local engine hands verl's functions equal the ones verl builds from
    its own composed config (every translated field)."""
    from verl.trainer.ppo.core_algos import get_kl_controller
    from verl.utils.config import omega_conf_to_dataclass

    from rlboundary.trainer.local.worker import verl_actor_config

    fields = ("clip_ratio", "clip_ratio_low", "clip_ratio_high", "clip_ratio_c", "loss_agg_mode",
              "entropy_coeff", "use_kl_loss", "kl_loss_coef", "kl_loss_type", "ppo_epochs",
              "shuffle")
    for cfg, verl_cfg in composed.values():
        verl_actor = omega_conf_to_dataclass(verl_cfg.actor_rollout_ref.actor)
        local = verl_actor_config(cfg["actor"], cfg["rollout"]["n"])
        for f in fields:
            assert getattr(local, f) == getattr(verl_actor, f), f
        assert local.policy_loss.loss_mode == verl_actor.policy_loss.loss_mode
        verl_algo = omega_conf_to_dataclass(verl_cfg.algorithm)
        local_algo = S.algo_config(cfg["algorithm"])
        for f in ("adv_estimator", "gamma", "lam", "norm_adv_by_std_in_grpo",
                  "use_kl_in_reward", "kl_penalty"):
            assert getattr(local_algo, f) == getattr(verl_algo, f), f
        from omegaconf import OmegaConf

        mine = get_kl_controller(OmegaConf.create(cfg["algorithm"]["kl_ctrl"]))
        theirs = get_kl_controller(verl_cfg.algorithm.kl_ctrl)
        assert type(mine) is type(theirs) and mine.value == theirs.value


def test_defaults_equal_verls_or_differ_on_purpose():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from rlboundary.hydra_scope import own_hydra
    from rlboundary.trainer.verl.parity import DIFFERENT_DEFAULTS, PARITY

    with own_hydra(), initialize_config_module("verl.trainer.config", version_base=None):
        verl = compose("ppo_trainer")
    ours = OmegaConf.create(_plain([]))
    differ = set()
    for verl_key, (key, _) in PARITY.items():
        if key is None or verl_key in ("reward.reward_manager.name",
                                       "trainer.checkpoint_callback_class") \
                or verl_key.startswith("reward.reward_kwargs"):
            continue  # a value of another kind (a name from a flag), or absent from verl's
        if _py(OmegaConf.select(verl, verl_key, throw_on_missing=False)) != _py(
                OmegaConf.select(ours, key)):
            differ.add(key)
    assert differ == set(DIFFERENT_DEFAULTS)


@pytest.mark.parametrize("overrides, names", [
    (["verl.trainer.nnodes=2"], "verl.trainer"),
    (["dry_run=true"], "dry_run"),
    (["algorithm=dapo", "algorithm.filter_groups.metric=seq_reward"],
     "algorithm.filter_groups.metric"),
    (["trainer.logger=[console,tensorboard]"], "trainer.logger"),
])
def test_settings_the_local_engine_cannot_honour_are_refused(overrides, names):
    from rlboundary.errors import UserError
    from rlboundary.trainer.local.engine import refuse_unsupported

    with pytest.raises(UserError, match=names.replace(".", r"\.")) as e:
        refuse_unsupported(_plain(overrides))
    assert "\n" not in str(e.value)
    refuse_unsupported(_plain([]))  # the defaults pass
