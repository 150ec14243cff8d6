"""engine=verl on CPU: every recipe composes and passes verl 0.9.1's own validate_config, each
algorithm's translation sets verl's keys, verl loads our reward function (by package, on any
node) and scores the real Omni-MATH-Rule answers with it, verl's rollout prompt ids are the
probes', and its validation is set as documented. The checkpoint callback's tests are in
test_verl_callback.py. Training itself needs GPUs."""

from __future__ import annotations

import glob
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rlboundary.commands import compose, plain
from rlboundary.trainer.verl import callback, launch
from rlboundary.trainer.verl.translate import CALLBACK, compose_verl, render, translation, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = sorted(glob.glob(os.path.join(ROOT, "recipes", "omni_math", "*.yaml")))
PPO_STUDY_RECIPES = [r for r in RECIPES if "hydra:" not in Path(r).read_text()]


def _recipe(path: str) -> list[str]:
    folder = os.path.dirname(path)
    return [f"hydra.searchpath=[file://{os.path.dirname(folder)}]",
            f"+{os.path.basename(folder)}={os.path.splitext(os.path.basename(path))[0]}"]


def _verl(overrides_: list[str], model: str):
    cfg = plain(compose(overrides_))
    return compose_verl(cfg, model, launch.callback_settings(cfg, None)), cfg


def test_recipes_exist_for_the_six_algorithms_and_the_ablations():
    names = {os.path.splitext(os.path.basename(p))[0] for p in RECIPES}
    assert {"ppo", "grpo", "rloo", "reinforce_pp", "remax", "dapo", "grpo_kl", "grpo_n32",
            "grpo_1p5b"} <= names


@pytest.mark.parametrize("recipe", PPO_STUDY_RECIPES, ids=os.path.basename)
@pytest.mark.parametrize("nodes", [1, 2])
def test_recipe_passes_verls_validation(recipe, nodes, trained_base):
    """Each study recipe, translated, is accepted by verl's validate_config on 1 x 8 and 2 x 8
    GPUs. base.path is the tiny base: PPO's critic config loads the model's tokenizer."""
    verl_cfg, cfg = _verl(_recipe(recipe) + [f"verl.trainer.nnodes={nodes}",
                                             f"base.path={trained_base}"], trained_base)
    roles = validate(verl_cfg)
    assert verl_cfg.trainer.nnodes == nodes and verl_cfg.trainer.n_gpus_per_node == 8
    assert verl_cfg.trainer.use_v1 is ("remax" not in recipe)   # V1 has no ReMax baseline
    launch.check_supported(cfg, verl_cfg)
    assert verl_cfg.trainer.checkpoint_callback_class == CALLBACK
    actor = verl_cfg.actor_rollout_ref.actor   # the study's numbers reach verl unchanged
    assert verl_cfg.data.train_batch_size == 256 and actor.ppo_mini_batch_size == 256
    assert actor.optim.lr == 1e-6 and actor.ppo_epochs == 1
    assert verl_cfg.actor_rollout_ref.rollout.response_length == 8192 or "1p5b" in recipe
    assert roles["use_critic"] == (cfg["algorithm"]["adv_estimator"] == "gae")
    assert verl_cfg.actor_rollout_ref.actor.use_kl_loss == ("grpo_kl" in recipe)


def test_sweep_recipes_compose():
    for recipe in set(RECIPES) - set(PPO_STUDY_RECIPES):
        cfg = compose(_recipe(recipe))
        assert cfg.engine == "verl"


# (algorithm, {verl key: expected value}) -- the keys the issue names for each algorithm.
TABLE = [
    ("ppo", {"algorithm.adv_estimator": "gae", "reward.reward_manager.name": "naive",
             "critic.ppo_mini_batch_size": 16, "critic.cliprange_value": 0.5}),
    ("grpo", {"algorithm.adv_estimator": "grpo", "algorithm.norm_adv_by_std_in_grpo": True,
              "algorithm.filter_groups.enable": False}),
    ("rloo", {"algorithm.adv_estimator": "rloo", "trainer.use_v1": True}),
    ("reinforce_pp", {"algorithm.adv_estimator": "reinforce_plus_plus", "trainer.use_v1": True}),
    ("remax", {"algorithm.adv_estimator": "remax", "trainer.use_v1": False}),
    ("dapo", {"algorithm.adv_estimator": "grpo", "algorithm.filter_groups.enable": True,
              "algorithm.filter_groups.metric": "acc",
              "algorithm.filter_groups.max_num_gen_batches": 4,
              "actor_rollout_ref.actor.clip_ratio_low": 0.2,
              "actor_rollout_ref.actor.clip_ratio_high": 0.28,
              "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
              "reward.reward_manager.name": "dapo",
              "reward.reward_kwargs.overlong_buffer_cfg.enable": True,
              "reward.reward_kwargs.overlong_buffer_cfg.len": 16,
              "reward.reward_kwargs.overlong_buffer_cfg.penalty_factor": 1.0,
              "reward.reward_kwargs.overlong_buffer_cfg.log": True,
              "reward.reward_kwargs.max_resp_len": 96}),
]
COMMON = {"actor_rollout_ref.rollout.n": 8, "actor_rollout_ref.actor.use_kl_loss": False,
          "actor_rollout_ref.actor.kl_loss_coef": 0.001, "algorithm.use_kl_in_reward": False,
          "actor_rollout_ref.actor.clip_ratio_low": 0.2,
          "reward.custom_reward_function.name": "compute_score",
          "actor_rollout_ref.actor.loss_agg_mode": "token-mean"}


@pytest.mark.parametrize("algorithm,expected", TABLE, ids=[t[0] for t in TABLE])
def test_translation_sets_verls_keys(algorithm, expected, random_tiny_model):
    verl_cfg, _ = _verl([f"algorithm={algorithm}", "engine=verl"], random_tiny_model)
    for key, value in {**COMMON, **expected}.items():
        assert OmegaConf.select(verl_cfg, key) == value, key
    # by package name, so a reward worker on any node imports it (no file path of this node)
    assert verl_cfg.reward.custom_reward_function.path == "pkg://rlboundary.tasks.verify"
    assert verl_cfg.actor_rollout_ref.model.path == random_tiny_model
    if algorithm != "dapo":
        assert "reward_kwargs" not in verl_cfg.reward
    validate(verl_cfg)


def test_every_translated_value_reaches_verl_unchanged(random_tiny_model):
    """The Hydra rendering round-trips: what verl composes equals what we translated."""
    cfg = plain(compose(["algorithm=dapo", "actor.clip_ratio_high=0.3", "rollout.n=5"]))
    verl_cfg = compose_verl(cfg, random_tiny_model, {})
    for key, value in translation(cfg, random_tiny_model).items():
        got = OmegaConf.select(verl_cfg, key.lstrip("+"))
        got = OmegaConf.to_container(got) if OmegaConf.is_config(got) else got
        assert got == value, key
    assert verl_cfg.actor_rollout_ref.actor.clip_ratio_high == 0.3


def test_verl_keys_from_recipe_and_command_line_win(random_tiny_model):
    verl_cfg, _ = _verl(["verl.actor_rollout_ref.rollout.n=3",
                         "verl.trainer.n_gpus_per_node=4", "rollout.n=8"], random_tiny_model)
    assert verl_cfg.actor_rollout_ref.rollout.n == 3       # verl.* is applied last
    assert verl_cfg.trainer.n_gpus_per_node == 4


def test_a_key_verl_lacks_is_one_clear_error(random_tiny_model):
    from rlboundary.errors import UserError

    with pytest.raises(UserError, match="no_such_key"):
        _verl(["verl.trainer.no_such_key=1"], random_tiny_model)


def test_render_matches_hydras_grammar():
    assert render(None) == "null" and render(True) == "true" and render(1e-06) == "1e-06"
    assert render(["a", 2]) == "['a',2]" and render({"x": 1}) == "{x:1}"
    from rlboundary.errors import UserError

    with pytest.raises(UserError):
        render("it's")


def test_dry_run_prints_a_config_verl_accepts_and_launches_nothing(tmp_path):
    env = {**os.environ, "RLBOUNDARY_TRACEBACK": "1"}
    run_dir = tmp_path / "run"
    out = subprocess.run([sys.executable, "-m", "rlboundary.cli", "train", "engine=verl",
                          "--recipe", os.path.join(ROOT, "recipes", "omni_math", "grpo.yaml"),
                          "dry_run=true", f"run_dir={run_dir}"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    yaml = out.stdout.split("checks passed successfully!\n")[1]   # verl's own line, then ours
    printed = OmegaConf.create(yaml.split("[rlboundary] verl validate_config passed")[0])
    assert printed.algorithm.adv_estimator == "grpo"
    assert printed.reward.custom_reward_function.path == "pkg://rlboundary.tasks.verify"
    assert "verl validate_config passed (1 node(s) x 8 GPUs" in out.stdout
    assert not run_dir.exists()


@pytest.mark.data
def test_verl_loads_our_reward_function_and_scores_the_real_answers(omni_path,
                                                                    random_tiny_model):
    """Through verl's own loader (get_custom_reward_fn) and the translated path: each real
    Omni-MATH-Rule answer, boxed, scores 1; another problem's answer scores 0."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from rlboundary.tasks.math_datasets import load_omni_math_rule

    verl_cfg, _ = _verl(["engine=verl"], random_tiny_model)
    fn = get_custom_reward_fn(verl_cfg)
    records = load_omni_math_rule(omni_path)
    right = [fn("omni_math_rule", f"So the answer is \\boxed{{{r.answer}}}.", r.answer)
             for r in records]
    rate = sum(o["acc"] for o in right) / len(records)
    wrong = [fn("omni_math_rule", f"\\boxed{{{b.answer}}}", a.answer)
             for a, b in itertools.pairwise(records[:201]) if a.answer != b.answer]
    assert len(records) == 2821
    assert rate >= 0.99, rate
    assert sum(o["acc"] for o in wrong) / len(wrong) <= 0.02


def test_verls_loader_imports_the_reward_by_package_from_any_directory(tmp_path,
                                                                        random_tiny_model):
    """verl's own get_custom_reward_fn, in a fresh interpreter whose working directory holds
    no checkout (a reward worker on another node): the translated pkg:// path loads
    compute_score, and it scores."""
    verl_cfg, _ = _verl(["engine=verl"], random_tiny_model)
    OmegaConf.save(OmegaConf.create({"reward": OmegaConf.to_container(verl_cfg.reward)}),
                   tmp_path / "reward.yaml")
    code = ("from omegaconf import OmegaConf; from verl.trainer.ppo.reward import "
            "get_custom_reward_fn; fn = get_custom_reward_fn(OmegaConf.load('reward.yaml')); "
            r"print(fn('omni_math_rule', 'so \\boxed{\\frac{1}{2}}', '0.5')['acc'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize("bos", [True, False], ids=["bos", "no_bos"])
def test_verls_rollout_prompt_ids_are_the_probes(tmp_path, trained_base, bos):
    """The prepared parquet's prompts, rendered with the translated chat template by verl's
    own rollout tokenizer path (the Continuous Token builder its agent loop uses), are the ids
    the probes sample from (encode_prompts): with a BOS tokenizer (the tiny base, like Llama-3)
    and without one (like Qwen2.5)."""
    import pandas as pd
    from transformers import AutoTokenizer
    from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

    from rlboundary.samplers.tokens import encode_prompts
    from rlboundary.tasks import TASKS
    from rlboundary.tasks.export import write_dataset

    tok = AutoTokenizer.from_pretrained(trained_base)
    if not bos:
        tok.bos_token = None
    assert (tok.bos_token_id is not None) == bos
    data = plain(compose([]).data)
    task = TASKS.get(data.pop("name"))
    data.pop("probe_split", None)
    records = [r for r in task.load(cache_dir=str(tmp_path), **data) if r.split == "test"]
    write_dataset(task, records[:64], str(tmp_path / "data"), {})
    rows = pd.read_parquet(tmp_path / "data" / "test.parquet")
    verl_cfg, _ = _verl(["engine=verl"], trained_base)
    tok.chat_template = verl_cfg.actor_rollout_ref.model.custom_chat_template
    builder = create_continuous_token_builder(tok, hf_model_type="llama")
    verl_ids = [builder.build_initial_tokens(list(p)) for p in rows["prompt"]]
    assert verl_ids == encode_prompts(tok, list(rows["raw_prompt_text"]))
    assert all((ids[0] == tok.bos_token_id) == bos for ids in verl_ids)


def test_verls_validation_is_off_while_probes_run_and_sampled_like_them_otherwise(
        tmp_path, random_tiny_model):
    """cluster.validation=auto: no greedy verl validation beside the probes (test_freq -1,
    nothing before training); with trainer.probe=off, verl validates at every save with the
    probes' n, T and top-p, before training on a fresh run only (a resumed step was validated
    when it was saved)."""
    run = tmp_path / "run"
    common = ["engine=verl", f"run_dir={run}", "n=16", "sampling.temperature=0.6",
              "sampling.top_p=0.95", "trainer.save_freq=5"]
    verl_cfg, _ = _verl(common, random_tiny_model)
    assert verl_cfg.trainer.test_freq == -1 and verl_cfg.trainer.val_before_train is False
    for extra in (["trainer.probe=off"], ["cluster.validation=sampled"]):
        verl_cfg, _ = _verl(common + extra, random_tiny_model)
        val = verl_cfg.actor_rollout_ref.rollout.val_kwargs
        assert (val.n, val.temperature, val.top_p, val.do_sample) == (16, 0.6, 0.95, True)
        assert verl_cfg.trainer.test_freq == 5 and verl_cfg.trainer.val_before_train is True
    (run / "checkpoints" / "global_step_5").mkdir(parents=True)
    verl_cfg, _ = _verl(common + ["trainer.probe=off"], random_tiny_model)
    assert verl_cfg.trainer.val_before_train is False   # resumed: step 5 was validated
    verl_cfg, _ = _verl(common + ["trainer.probe=off", "cluster.validation=off"],
                        random_tiny_model)
    assert verl_cfg.trainer.test_freq == -1


def test_verls_validation_metrics_never_take_a_probe_metrics_name(tmp_path):
    """verl's val-core/<data>/acc/mean@N stays under its own name in metrics.jsonl, apart from
    the probes' pass@k rows."""
    from rlboundary.results.metrics import upsert_metrics

    run = tmp_path / "run"
    run.mkdir()
    (run / callback.VERL_METRICS).write_text(json.dumps(
        {"step": 5, "data": {"val-core/arithmetic/acc/mean@16": 0.4,
                             "critic/rewards/mean": 0.3}}) + "\n")
    upsert_metrics(str(run), {"kind": "probe", "step": 5, "dataset": "arithmetic",
                              "pass@1": 0.2, "pass@16": 0.6})
    assert callback.import_train_metrics(str(run)) == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = next(r for r in rows if r["kind"] == "train")
    probe = next(r for r in rows if r["kind"] == "probe")
    assert train["val-core/arithmetic/acc/mean@16"] == 0.4
    assert not (set(train) - {"kind", "step"}) & (set(probe) - {"kind", "step", "dataset"})
    assert not any(k.startswith(("pass@", "probe/")) for k in train)


def test_readme_and_docker_name_recipes_that_exist():
    import re

    text = "".join(Path(ROOT, p).read_text() for p in ("README.md", "docker/README.md",
                                                               "docker/Dockerfile"))
    named = set(re.findall(r"recipes/omni_math/[\w.]+\.yaml", text))
    named -= {"recipes/omni_math/NAME.yaml"}
    assert {"recipes/omni_math/grpo.yaml"} <= named
    assert all(os.path.exists(os.path.join(ROOT, p)) for p in named), named
    # every recipe appears in the README's table of recipes
    readme = Path(ROOT, "README.md").read_text()
    assert all(f"`{os.path.basename(r)}`" in readme for r in RECIPES)


def test_a_sweep_of_verl_jobs_checks_every_config(tmp_path, trained_base):
    """`train -m` with engine=verl recipes: Hydra's multirun runs each job's translation and
    verl's validation (inside a running Hydra job); dry-run jobs end `checked`, not `done`."""
    out = subprocess.run([sys.executable, "-m", "rlboundary.cli", "train", "-m", "--recipe",
                          os.path.join(ROOT, "recipes", "omni_math", "six_algorithms.yaml"),
                          "dry_run=true", f"base.path={trained_base}",
                          f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = sorted(glob.glob(str(tmp_path / "sweep" / "*" / "job.json")))
    statuses = {os.path.basename(os.path.dirname(j)): json.loads(Path(j).read_text())["status"] for j in jobs}
    assert statuses == {f"algorithm={a}": "checked" for a in
                        ("ppo", "grpo", "rloo", "reinforce_pp", "remax", "dapo")}


@pytest.mark.parametrize("settings,match", [
    (["algorithm=remax", "verl.trainer.use_v1=true"], "ReMax"),
    (["algorithm=remax", "trainer.probe=async"], "V1"),
    (["algorithm=grpo", "verl.trainer.use_v1=false", "trainer.probe=async"], "V1"),
    (["trainer.probe=sync"], "TaskRunner"),
    (["trainer.probe=after", "trainer.keep_last=2"], "keep_last"),
])
def test_what_verl_cannot_run_is_refused_before_launch(settings, match, random_tiny_model):
    from rlboundary.errors import UserError

    verl_cfg, cfg = _verl(["engine=verl", *settings], random_tiny_model)
    with pytest.raises(UserError, match=match):
        launch.check_supported(cfg, verl_cfg)


def test_resume_disable_refuses_a_run_dir_with_checkpoints(tmp_path):
    from rlboundary.errors import UserError

    cfg = plain(compose(["engine=verl", "resume=disable", f"run_dir={tmp_path}"]))
    launch._check_resume(cfg)                       # empty run_dir: fine
    (tmp_path / "checkpoints" / "global_step_5").mkdir(parents=True)
    with pytest.raises(UserError, match="resume=auto"):
        launch._check_resume(cfg)
