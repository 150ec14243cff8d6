"""Probes for runs rlboundary did not launch (rlboundary/integrations): the README's plain-verl
block loads our callback through verl's own builder from verl's ``ppo_trainer.yaml`` alone and
probes a ``global_step_N/actor/huggingface`` checkpoint; the README's TRL callback probes a
``GRPOTrainer`` run end to end (TRL is a test extra: skipped where it is not installed)."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import re
import shlex
import shutil
import types

import pytest

from rlboundary.errors import UserError
from rlboundary.integrations.settings import beside_overrides, overrides_from, probe_command

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## Already training? Add the probe")[1].split("\n## ")[0]


# ------------------------------------------------------------------ settings, by hand
def test_a_nested_node_becomes_the_command_lines_overrides():
    node = {"n": 64, "probe": {"datasets": ["math500", "omni_math_rule"], "adaptive": True,
                               "limit": None},
            "sampler": "vllm", "sampling": {"temperature": 0.6}, "run_dir": "/runs/a b"}
    assert overrides_from(node) == [
        "n=64", "probe.datasets=[math500,omni_math_rule]", "probe.adaptive=true",
        "probe.limit=null", "sampler=vllm", "sampling.temperature=0.6", "run_dir='/runs/a b'"]
    recipe = overrides_from({"recipe": str(ROOT / "recipes" / "tiny_probe.yaml")})
    assert recipe == [f"hydra.searchpath=[file://{ROOT}]", "+recipes=tiny_probe"]
    with pytest.raises(UserError, match="rlboundary.probe.x"):
        overrides_from({"probe": {"x": [{"a": 1}]}})


def test_the_trainers_facts_yield_to_the_users_settings():
    words = beside_overrides(["n=8", "base=/models/b"], base_path="/models/a", run_dir="/out",
                             max_new_tokens=512)
    assert words == ["+preset=beside", "run_dir=/out", "sampling.max_new_tokens=512", "n=8",
                     "base.path=/models/b"]
    assert beside_overrides([], base_path="org/m", run_dir="/o")[:2] == ["+preset=beside",
                                                                        "base.path=org/m"]
    with pytest.raises(UserError, match="base.path"):
        beside_overrides([], base_path=None, run_dir="/o")
    assert probe_command(["n=8"], "/c/checkpoint-4", 4) == [
        "rlboundary", "probe", "n=8", "model=/c/checkpoint-4", "step=4"]


# ------------------------------------------------------------------ plain verl
def _readme_verl_words() -> list[str]:
    """The words the README's verl block adds to a user's own command."""
    block = re.search(r"```bash\n(python -m verl\.trainer\.main_ppo.*?)```", SECTION, re.DOTALL)
    words = shlex.split(block.group(1).replace("\\\n", " "))
    start = next(i for i, w in enumerate(words) if w.startswith("trainer.checkpoint_callback"))
    return words[start:]


def _verl_config(words: list[str]):
    from hydra import compose, initialize_config_module

    from rlboundary.hydra_scope import own_hydra

    with own_hydra(), initialize_config_module("verl.trainer.config", version_base=None):
        return compose("ppo_trainer", overrides=words)


def _small(tmp_path, base: str, probe: str) -> list[str]:
    """The test's own settings after the README's (a tiny model on CPU, hf sampler)."""
    return [f"actor_rollout_ref.model.path={base}", "data.max_response_length=48",
            f"trainer.default_local_dir={tmp_path / 'ckpts'}", "trainer.logger=[console]",
            "++rlboundary.sampler=hf", "++rlboundary.data=arithmetic", "++rlboundary.n=4",
            "++rlboundary.probe.limit=4", "++rlboundary.probe.chunk=4",
            "++rlboundary.sampling.temperature=1.0", f"++rlboundary.trainer.probe={probe}",
            "++rlboundary.cluster.probe_gpus=0"]


def _global_step(root: pathlib.Path, base: str, step: int) -> str:
    ckpt = root / f"global_step_{step}"
    shutil.copytree(base, ckpt / "actor" / "huggingface")
    return str(ckpt)


def test_the_readme_verl_block_probes_a_plain_verl_checkpoint(tmp_path, trained_base):
    from verl.trainer.ppo.checkpoint_callback import build_checkpoint_callback

    from rlboundary.integrations import verl as integration
    from rlboundary.results.failures import failures

    words = _readme_verl_words()
    assert "trainer.checkpoint_callback_class=rlboundary.integrations.verl.ProbeCallback" in words
    cfg = _verl_config(words + _small(tmp_path, trained_base, "sync"))
    assert "rlboundary" in cfg and "run_dir" not in cfg.rlboundary   # only the user's node
    cb = build_checkpoint_callback(cfg)                 # verl's own loader, by the name
    assert type(cb) is integration.ProbeCallback
    run = tmp_path / "ckpts"
    assert cb.rb["run_dir"] == str(run) and cb.rb["hf_checkpoint"] == "save"
    s = cb.rb["settings"]
    assert s["base_path"] == trained_base and s["sampling"]["max_new_tokens"] == 48
    assert s["sampling"]["top_p"] == 0.95 and list(s["probe"]["datasets"]) == ["arithmetic"]
    cb.on_save(trainer=None, global_step=2, checkpoint_dir=_global_step(run, trained_base, 2))
    assert failures(str(run)) == []
    for step in (0, 2):
        assert (run / "probes" / "arithmetic" / f"step_{step:08d}.parquet").exists()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 2]
    # the command a failure record names redoes the probe from the shell (here: all cached)
    from rlboundary.cli import main as cli

    redo = shlex.split(cb.rb["redo"])
    assert redo[:3] == ["rlboundary", "probe", "+preset=beside"] and redo[-1] == f"series={run}"
    assert cli(redo[1:]) == 0
    assert os.path.exists(run / "report" / "index.html")


def test_plain_verl_settings_fail_at_start_up_with_one_line(tmp_path, trained_base):
    from rlboundary.integrations import verl as integration

    base = _readme_verl_words() + _small(tmp_path, trained_base, "after")
    with pytest.raises(UserError, match="probe=after needs `rlboundary train engine=verl`"):
        integration.ProbeCallback(_verl_config(base))
    bad = _readme_verl_words()[:1] + _small(tmp_path, trained_base, "sync") + [
        "++rlboundary.no_such_key=1"]
    with pytest.raises(UserError, match="no_such_key"):
        integration.ProbeCallback(_verl_config(bad))
    # without hf_model in save_contents, verl's merger makes the HF weights
    only = _readme_verl_words()[:1] + _small(tmp_path, trained_base, "sync")
    assert integration.ProbeCallback(_verl_config(only)).rb["hf_checkpoint"] == "merge"


def test_async_probes_are_collected_at_the_last_save(tmp_path, trained_base):
    """No rlboundary driver runs after a plain verl command: the last step's save waits for
    the detached actor's probes, logs them and removes the actor."""
    import ray

    from rlboundary.integrations import verl as integration
    from rlboundary.results.failures import failures
    from rlboundary.trainer.verl import callback

    cfg = _verl_config(_readme_verl_words() + _small(tmp_path, trained_base, "async"))
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, configure_logging=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        cb = integration.ProbeCallback(cfg)
        verl_trainer = types.SimpleNamespace(total_training_steps=2)   # what on_save reads
        run = tmp_path / "ckpts"
        cb.on_save(trainer=verl_trainer, global_step=2,
                   checkpoint_dir=_global_step(run, trained_base, 2))
        assert cb.pending == {} and cb.actor is None
        with pytest.raises(ValueError):
            ray.get_actor(callback.actor_name(str(run)))
    finally:
        ray.shutdown()
    assert failures(str(run)) == []
    assert (run / "probes" / "arithmetic" / "step_00000002.parquet").exists()


# ------------------------------------------------------------------ TRL
def _readme_trl_call() -> tuple[list[str], dict]:
    """The arguments of the README's ``ProbeCallback(...)`` in its TRL snippet."""
    block = re.search(r"```python\n(.*?)```", SECTION, re.DOTALL).group(1)
    call = next(n for n in ast.walk(ast.parse(block)) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "ProbeCallback")
    return ([ast.literal_eval(a) for a in call.args],
            {k.arg: ast.literal_eval(k.value) for k in call.keywords})


def test_the_readme_trl_callback_probes_a_grpo_run(tmp_path, trained_base, monkeypatch):
    pytest.importorskip("trl")
    import torch
    import wandb
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from rlboundary.commands import compose, plain
    from rlboundary.integrations import ProbeCallback
    from rlboundary.results.failures import failures
    from rlboundary.tasks import TASKS
    from rlboundary.tasks.prompts import render
    from rlboundary.tasks.verify import compute_score

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    torch.set_num_threads(1)
    data = plain(compose([]).data)
    task = TASKS.get(data.pop("name"))
    rows = [r for r in task.load(cache_dir=os.environ["RLBOUNDARY_CACHE"], **data)
            if r.split == "train"][:32]
    dataset = Dataset.from_list([{"prompt": render(task.template, r.problem), "gold": r.answer}
                                 for r in rows])

    def reward(completions, gold, **_):
        return [float(compute_score(task.name, c, g)["score"]) for c, g in zip(completions, gold)]

    args, kwargs = _readme_trl_call()
    small = ["data=arithmetic", "probe.datasets=[arithmetic]", "n=4", "probe.limit=4",
             "probe.chunk=4", "sampling.temperature=1.0", "progress=false"]
    out = tmp_path / "trl_grpo"
    trainer = GRPOTrainer(
        model=trained_base, reward_funcs=reward, train_dataset=dataset,
        args=GRPOConfig(output_dir=str(out), use_cpu=True, report_to=["wandb", "tensorboard"],
                        save_steps=2,
                        max_steps=4, per_device_train_batch_size=8, num_generations=4,
                        max_completion_length=40, logging_steps=1, learning_rate=1e-4,
                        beta=0.0, seed=0, disable_tqdm=True, dataloader_num_workers=0),
        callbacks=[ProbeCallback(*args, *small, threads=1, **kwargs)])
    try:
        trainer.train()
        summary = dict(wandb.run.summary)
    finally:
        wandb.finish()
        wandb.teardown()   # W&B's process-wide settings (WANDB_DIR) would outlive the test
    assert failures(str(out)) == []
    for step in (0, 2, 4):
        assert (out / "probes" / "arithmetic" / f"step_{step:08d}.parquet").exists()
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in metrics if r.get("kind", "probe") == "probe"]
    train = {r["step"]: r for r in metrics if r.get("kind") == "train"}
    assert [r["step"] for r in probes] == [0, 2, 4]
    assert "pass@4" in probes[0] and "pass@8" not in probes[0]          # n=4 from the test
    assert "max_new=40" in probes[-1]["settings"]                       # TRL's length
    assert sorted(train) == [1, 2, 3, 4]
    assert "train/reward" in train[4] and "train/train_runtime" in train[4]  # merged, not lost
    assert summary["probe/step"] == 4 and "probe/arithmetic/pass@4" in summary
    assert list((out / "runs" / "rlboundary_probes").glob("events.out.tfevents.*"))
    from rlboundary.report import write_report
    from rlboundary.report.compare import write_compare

    assert os.path.exists(write_report(str(out)))
    # report --compare reads such runs: here beside a copy of itself (one base, two runs)
    twin = tmp_path / "trl_twin"
    shutil.copytree(out, twin, ignore=shutil.ignore_patterns("checkpoint-*", "wandb", "runs"))
    page = write_compare([str(out), str(twin)])
    assert page.exists() and "trl_twin" in page.read_text()


def test_a_failing_probe_is_recorded_with_the_command_that_redoes_it(tmp_path, trained_base):
    """A checkpoint the probe cannot read: recorded with its log and the command, never raised
    into the Trainer (driven here through the callback's own events)."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from rlboundary.integrations import ProbeCallback
    from rlboundary.results.failures import failures

    out = tmp_path / "out"
    args = TrainingArguments(output_dir=str(out), report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    cb = ProbeCallback("data=arithmetic", "n=2", "probe.limit=2", threads=1)
    model = types.SimpleNamespace(name_or_path=trained_base)
    cb.on_train_begin(args, state, control, model=model)
    (out / "checkpoint-3").mkdir(parents=True)          # no weights in it
    state.global_step = 3
    cb.on_save(args, state, control)
    cb.on_train_end(args, state, control)
    recs = failures(str(out))
    assert [r["step"] for r in recs] == [3]
    assert "checkpoint-3" in recs[0]["redo"] and recs[0]["redo"].startswith("rlboundary probe")
    assert "step_3.log" in recs[0]["error"]
    assert (out / "probes" / "arithmetic" / "step_00000000.parquet").exists()
    # a bad setting: one line at train begin, probes off, training untouched
    cb = ProbeCallback("no_such_key=1")
    cb.on_train_begin(args, state, control, model=model)
    assert cb.words is None
