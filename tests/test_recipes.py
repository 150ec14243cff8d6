"""The study's recipes say what the study did: every ``recipes/omni_math/*.yaml`` composes to the
training and probe settings arXiv 2504.13837 states (prompt batch 256, PPO mini-batch 256, 8
responses per prompt at T=1.0 up to 8192 tokens, AdamW at a constant 1e-6, no KL, 450 steps with
checkpoints at 150 / 300 / 450; probes n=256 at T=0.6, top-p 0.95, up to 16384 tokens), except
where a recipe exists to change one of them (the KL and rollout ablations, the 1.5B model), and
verl receives those numbers unchanged."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlboundary.cli_args import recipe_overrides
from rlboundary.commands import compose, compose_hydra, plain

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(glob.glob(str(ROOT / "recipes" / "omni_math" / "*.yaml")))
SWEEPS = [r for r in RECIPES if "sweeper:" in Path(r).read_text()]
RUNS = [r for r in RECIPES if r not in SWEEPS]

#: (key, the study's value). Keys are rlboundary's (verl's names where verl has one).
STUDY = [
    ("data.name", "omni_math_rule"),
    ("base.path", "/models/Qwen2.5-7B"),
    ("engine", "verl"),
    ("data.train_batch_size", 256),
    ("actor.ppo_mini_batch_size", 256),
    ("actor.ppo_epochs", 1),
    ("rollout.n", 8),
    ("rollout.temperature", 1.0),
    ("rollout.response_length", 8192),
    ("actor.optim.lr", 1e-6),
    ("actor.optim.lr_warmup_steps", 0),
    ("actor.use_kl_loss", False),
    ("algorithm.use_kl_in_reward", False),
    ("trainer.total_training_steps", 450),
    ("trainer.save_freq", 150),
    ("n", 256),
    ("sampling.temperature", 0.6),
    ("sampling.top_p", 0.95),
    ("sampling.max_new_tokens", 16384),
    ("probe.datasets", ["omni_math_rule", "math500"]),
]

#: What a recipe changes on purpose (its header says so): {recipe: {key: value}}.
CHANGED = {
    "grpo_kl": {"actor.use_kl_loss": True},
    "grpo_n32": {"rollout.n": 32},
    "grpo_1p5b": {"base.path": "/models/Qwen2.5-1.5B", "rollout.response_length": 4096,
                  "sampling.max_new_tokens": 8192},
    # the study's algorithm comparison reads every algorithm at step 150
    **{name: {"trainer.total_training_steps": 150}
       for name in ("ppo", "rloo", "reinforce_pp", "remax", "dapo")},
}


def _name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _cfg(recipe: str) -> dict:
    return plain(compose(recipe_overrides(recipe)))


def _get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def test_the_recipes_are_all_here():
    assert {_name(r) for r in RECIPES} >= {"study", "ppo", "grpo", "rloo", "reinforce_pp",
                                           "remax", "dapo", "grpo_kl", "grpo_n32",
                                           "six_algorithms", "ablate_kl_n"}


@pytest.mark.parametrize("recipe", RUNS, ids=_name)
def test_a_recipe_trains_with_the_studys_stated_values(recipe):
    cfg = _cfg(recipe)
    expected = {**dict(STUDY), **CHANGED.get(_name(recipe), {})}
    wrong = {key: (_get(cfg, key), want) for key, want in expected.items()
             if _get(cfg, key) != want}
    assert not wrong, f"{_name(recipe)}: (has, study) {wrong}"
    # one update of the whole batch per step: on-policy, as the study trained
    assert cfg["data"]["train_batch_size"] == cfg["actor"]["ppo_mini_batch_size"]
    if cfg["algorithm"]["adv_estimator"] == "gae":   # PPO's critic takes the same batches
        assert cfg["critic"]["ppo_mini_batch_size"] == 256
        assert cfg["critic"]["optim"]["lr"] == 1e-5   # not stated: verl's default
    assert cfg["algorithm"]["name"] == (_name(recipe) if _name(recipe) in (
        "ppo", "rloo", "reinforce_pp", "remax", "dapo") else "grpo")


def test_the_sweeps_are_the_studys_ablations():
    params = {}
    for recipe in SWEEPS:
        cfg = compose_hydra(recipe_overrides(recipe), multirun=True)
        params[_name(recipe)] = OmegaConf.to_container(cfg.hydra.sweeper.params)
        run = plain(compose(recipe_overrides(recipe)))
        for key, want in STUDY:
            if key not in ("trainer.total_training_steps",):
                assert _get(run, key) == want, (_name(recipe), key)
        assert run["trainer"]["total_training_steps"] == 150
    assert params["six_algorithms"] == {"algorithm": "ppo,grpo,rloo,reinforce_pp,remax,dapo"}
    assert params["ablate_kl_n"] == {"actor.use_kl_loss": "false,true", "rollout.n": "8,32"}


def test_every_recipe_says_where_its_numbers_come_from():
    """study.yaml's header gives each number its source ("study" or "not stated: ..."); every
    other recipe points at it and says what it changes."""
    header = Path(ROOT / "recipes" / "omni_math" / "study.yaml").read_text().split("defaults:")[0]
    for line in ("prompts per step", "PPO mini-batch", "responses per prompt", "optimizer",
                 "KL term", "training steps", "probes"):
        row = next(r for r in header.splitlines() if line in r)
        assert "study" in row or "study" in header.splitlines()[
            header.splitlines().index(row) + 1], line
    assert header.count("not stated") >= 4
    for recipe in RECIPES:
        if _name(recipe) != "study":
            assert "study.yaml" in Path(recipe).read_text().split("defaults:")[0], recipe


# ------------------------------------------------------------------------------ dry runs

ALGORITHM_RECIPES = [r for r in RUNS if _name(r) in ("ppo", "grpo", "rloo", "reinforce_pp",
                                                     "remax", "dapo")]


def _dry_run(recipe: str, tmp_path, capsys, *extra: str) -> tuple[int, str, str]:
    from rlboundary.cli import main

    rc = main(["train", "--recipe", recipe, "dry_run=true", f"run_dir={tmp_path / 'run'}",
               f"base.path={tmp_path / 'no_such_model'}", *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("recipe", ALGORITHM_RECIPES, ids=_name)
def test_a_dry_run_needs_no_weights_and_says_what_it_did_not_check(recipe, tmp_path, capsys):
    """The six algorithms' dry runs pass with base.path pointing at a folder that does not
    exist (PPO's critic config is built from a stand-in config.json), print the real path in
    verl's config, and name what could not be checked; nothing is written."""
    rc, out, err = _dry_run(recipe, tmp_path, capsys)
    assert rc == 0, err
    assert "verl validate_config passed" in out
    printed = out.split("checks passed successfully!\n")[-1]
    assert f"path: {tmp_path / 'no_such_model'}" in printed   # the real path, not the stand-in
    assert "rlboundary_stand_in" not in printed
    skipped = [line for line in out.splitlines() if line.startswith("[rlboundary] not checked:")]
    assert "no_such_model (not on this machine; verl validated a stand-in qwen2" in skipped[0]
    assert "weights" in skipped[0] and "tokenizer" in skipped[0]
    assert ("critic True" in out) == (_name(recipe) == "ppo")
    assert not (tmp_path / "run").exists()


def test_the_stand_in_still_lets_verl_reject_a_bad_critic(tmp_path, capsys):
    """The stand-in replaces the model, not the checks: verl's critic validation still runs."""
    rc, _, err = _dry_run(str(ROOT / "recipes" / "omni_math" / "ppo.yaml"), tmp_path, capsys,
                          "critic.ppo_mini_batch_size=512", "verl.critic.use_dynamic_bsz=false")
    assert rc == 2
    assert "must be >= critic.ppo_mini_batch_size (512)" in err


def test_a_real_run_without_the_model_is_one_line(tmp_path, capsys):
    from rlboundary.cli import main

    rc = main(["train", "--recipe", str(ROOT / "recipes" / "omni_math" / "grpo.yaml"),
               f"run_dir={tmp_path / 'run'}", f"base.path={tmp_path / 'no_such_model'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "no_such_model: no model there" in err[0] and "dry_run=true" in err[0]


def test_an_unknown_stand_in_architecture_is_one_line(tmp_path, capsys):
    rc, _, err = _dry_run(str(ROOT / "recipes" / "omni_math" / "ppo.yaml"), tmp_path, capsys,
                          "dry_run_stand_in=no_such_arch")
    assert rc == 2 and "dry_run_stand_in=no_such_arch: not a transformers causal-LM" in err
