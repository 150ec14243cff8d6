"""engine=verl's checkpoint callback on CPU: a fresh Ray actor imports it by its configured
name; it probes an HF checkpoint into the run layout, survives a failing probe, waits for async
saves, merges FSDP shards, probes on a detached actor the driver drains or once training ends,
copies verl's training metrics into metrics.jsonl and logs probe rows into verl's W&B run
without committing them. Training itself needs GPUs."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from omegaconf import OmegaConf

from rlboundary.commands import compose, plain, probe_settings
from rlboundary.trainer.verl import callback, launch
from rlboundary.trainer.verl.translate import compose_verl


def _checkpoint(root, base: str, step: int) -> str:
    """A verl-style global_step_N whose actor/huggingface holds HF weights (hf_model saved)."""
    ckpt = root / "checkpoints" / f"global_step_{step}"
    shutil.copytree(base, ckpt / "actor" / "huggingface")
    return str(ckpt)


def _callback_cfg(tmp_path, trained_base, base_overrides, probe="sync", **extra):
    cfg = compose(base_overrides + [f"base.path={trained_base}", "engine=verl", "n=4",
                                    "probe.limit=4", "probe.chunk=4", f"trainer.probe={probe}",
                                    f"run_dir={tmp_path / 'run'}", "trainer.logger=[console]",
                                    "cluster.probe_gpus=0"]
                  + [f"{k}={v}" for k, v in extra.items()])
    settings = probe_settings(cfg, trained_base)
    cfg = plain(cfg)
    return compose_verl(cfg, trained_base, launch.callback_settings(cfg, settings)), cfg


def test_callback_probes_an_hf_checkpoint_into_the_run_layout(tmp_path, trained_base,
                                                              base_overrides):
    from verl.trainer.ppo.checkpoint_callback import build_checkpoint_callback

    verl_cfg, _cfg = _callback_cfg(tmp_path, trained_base, base_overrides)
    cb = build_checkpoint_callback(verl_cfg)        # verl's own loader, by the configured name
    assert isinstance(cb, callback.ProbeCallback)
    ckpt = _checkpoint(tmp_path / "run", trained_base, 5)
    cb.on_save(trainer=None, global_step=5, checkpoint_dir=ckpt, async_save=False)
    run = tmp_path / "run"
    assert (run / "probes" / "arithmetic" / "step_00000005.parquet").exists()
    assert (run / "probes" / "arithmetic" / "step_00000000.parquet").exists()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 5]
    assert callback.failures(str(run)) == []
    # `rlboundary probe series=` finds verl's layout, and the report reads the run
    from rlboundary.probing.inputs import find_checkpoints
    from rlboundary.report import write_report

    assert find_checkpoints(str(run / "checkpoints"))[0][0] == 5
    assert os.path.exists(write_report(str(run)))


def test_a_failing_probe_is_recorded_and_training_goes_on(tmp_path, trained_base,
                                                          base_overrides, monkeypatch):
    from rlboundary.probing import runner as probe_runner

    verl_cfg, _ = _callback_cfg(tmp_path, trained_base, base_overrides)
    cb = callback.ProbeCallback(verl_cfg)

    def boom(*a, **k):
        raise RuntimeError("sampler fell over")

    monkeypatch.setattr(probe_runner, "probe_checkpoint", boom)
    ckpt = _checkpoint(tmp_path / "run", trained_base, 7)
    cb.on_save(trainer=None, global_step=7, checkpoint_dir=ckpt)      # must not raise
    # a checkpoint without HF weights fails too, with the fix in the message
    empty = tmp_path / "run" / "checkpoints" / "global_step_8"
    (empty / "actor" / "huggingface").mkdir(parents=True)
    cb.on_save(trainer=None, global_step=8, checkpoint_dir=str(empty))
    recs = callback.failures(str(tmp_path / "run"))
    assert [r["step"] for r in recs] == [7, 8]
    assert "sampler fell over" in recs[0]["error"]
    assert "save_contents" in recs[1]["error"]


def test_async_save_waits_for_the_weights(tmp_path, trained_base, base_overrides):
    _verl_cfg, _ = _callback_cfg(tmp_path, trained_base, base_overrides, probe="off")
    hf = tmp_path / "global_step_3" / "actor" / "huggingface"
    hf.mkdir(parents=True)
    with pytest.raises(TimeoutError, match="huggingface"):
        callback.hf_checkpoint(str(tmp_path / "global_step_3"), "save", True, wait_s=0.5)
    for f in os.listdir(trained_base):
        shutil.copy(os.path.join(trained_base, f), hf / f)
    assert callback.hf_checkpoint(str(tmp_path / "global_step_3"), "save", True, 5) == str(hf)


def test_merge_mode_makes_hf_weights_from_fsdp_shards(tmp_path, random_tiny_model):
    """cluster.hf_checkpoint=merge: verl's FSDP model merger turns a world-size-1 actor
    checkpoint (plain tensors, as FSDP writes for one rank) into an HF model equal to it in
    bfloat16 (the merger's dtype)."""
    import torch
    from transformers import AutoModelForCausalLM

    actor = tmp_path / "global_step_2" / "actor"
    (actor / "huggingface").mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(random_tiny_model)
    torch.save(model.state_dict(), actor / "model_world_size_1_rank_0.pt")
    (actor / "fsdp_config.json").write_text(json.dumps({"FSDP_version": 2, "world_size": 1}))
    for f in os.listdir(random_tiny_model):
        if not f.endswith((".safetensors", ".bin")):
            shutil.copy(os.path.join(random_tiny_model, f), actor / "huggingface" / f)
    path = callback.hf_checkpoint(str(tmp_path / "global_step_2"), "merge", False, 0)
    merged = AutoModelForCausalLM.from_pretrained(path)
    for (k, a), b in zip(model.state_dict().items(), merged.state_dict().values()):
        assert b.dtype == torch.bfloat16 and torch.equal(a.to(b.dtype), b), k


def _fresh_ray(env: dict) -> None:
    """A new local Ray with only ``env`` as its job environment (an earlier test's Ray, if
    any, is shut down: its workers would carry that test's environment)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, configure_logging=False,
             runtime_env={"env_vars": env})


def test_async_mode_probes_on_a_detached_actor_the_driver_drains(tmp_path, trained_base,
                                                                base_overrides):
    import ray

    verl_cfg, cfg = _callback_cfg(tmp_path, trained_base, base_overrides, probe="async")
    _fresh_ray({"OMP_NUM_THREADS": "1"})
    try:
        cb = callback.ProbeCallback(verl_cfg)
        cb.on_save(trainer=None, global_step=4,
                   checkpoint_dir=_checkpoint(tmp_path / "run", trained_base, 4))
        settings = OmegaConf.to_container(verl_cfg.rlboundary.settings)
        late = launch.finish_probes(cfg, settings)          # the driver, after verl returns
    finally:
        ray.shutdown()
    assert set(late) == {0, 4} and "arithmetic" in late[4]
    assert (tmp_path / "run" / "probes" / "arithmetic" / "step_00000004.parquet").exists()


def test_a_fresh_ray_actor_imports_the_callback_by_its_configured_name(tmp_path,
                                                                      random_tiny_model):
    """With only the environment the launcher sets, a new Ray worker process (as verl's
    TaskRunnerV1 is) loads the class named in trainer.checkpoint_callback_class, and
    importing verl there imports our module (VERL_USE_EXTERNAL_MODULES)."""
    import ray

    cfg = plain(compose(["engine=verl", f"run_dir={tmp_path / 'run'}"]))
    verl_cfg = compose_verl(cfg, random_tiny_model, launch.callback_settings(cfg, None))
    env = launch.runtime_env(cfg, create=False)

    def load(fqn: str) -> tuple[str, bool, bool]:
        import sys as _sys

        import verl  # noqa: F401 - its __init__ reads VERL_USE_EXTERNAL_MODULES
        from verl.trainer.ppo.checkpoint_callback import CheckpointCallback
        from verl.utils.import_utils import load_class_from_fqn

        preloaded = "rlboundary.trainer.verl.callback" in _sys.modules
        cls = load_class_from_fqn(fqn, "CheckpointCallback")
        return cls.__name__, issubclass(cls, CheckpointCallback), preloaded

    _fresh_ray(env)
    try:
        name, is_callback, preloaded = ray.get(
            ray.remote(load).remote(verl_cfg.trainer.checkpoint_callback_class))
    finally:
        ray.shutdown()
    assert (name, is_callback, preloaded) == ("ProbeCallback", True, True)


def test_verl_train_metrics_join_the_run_metrics(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / callback.VERL_METRICS).write_text(
        json.dumps({"step": 1, "data": {"critic/rewards/mean": 0.25, "actor/entropy": 1.5,
                                        "note": "x"}}) + "\n{\"step\": 2, \"da")
    assert callback.import_train_metrics(str(run)) == 1
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"kind": "train", "step": 1, "critic/rewards/mean": 0.25,
                     "actor/entropy": 1.5, "train/reward": 0.25}]


def test_after_mode_probes_every_checkpoint_once_training_ends(tmp_path, trained_base,
                                                              base_overrides):
    """trainer.probe=after: the hook only checks the HF weights; the driver then probes the
    base and every checkpoint in RUN_DIR/checkpoints (verl's global_step_N/actor/huggingface)."""
    verl_cfg, cfg = _callback_cfg(tmp_path, trained_base, base_overrides, probe="after")
    cb = callback.ProbeCallback(verl_cfg)
    for step in (2, 4):
        cb.on_save(trainer=None, global_step=step,
                   checkpoint_dir=_checkpoint(tmp_path / "run", trained_base, step))
    assert not (tmp_path / "run" / "probes").exists()           # nothing probed during training
    settings = OmegaConf.to_container(verl_cfg.rlboundary.settings)
    late = launch.finish_probes(cfg, settings)
    assert sorted(late) == [0, 2, 4]
    assert callback.failures(str(tmp_path / "run")) == []


def test_probe_results_ride_along_with_verls_next_wandb_row(tmp_path, monkeypatch):
    """verl logs with explicit steps, so a probe row must not commit (W&B would move its step
    past verl's and drop verl's next rows): every log call from the hook has commit=False."""
    import wandb

    run = wandb.init(project="t", mode="offline", dir=str(tmp_path),
                     settings=wandb.Settings(console="off"))
    calls, real_log = [], run.log

    def spy(data, *a, commit=None, **kw):
        calls.append(commit)
        return real_log(data, *a, commit=commit, **kw)

    monkeypatch.setattr(run, "log", spy)
    try:
        callback._log_wandb(3, {"arith": {"pass@1": 0.5, "k_max": 8}})
        callback._log_wandb(3, None, failed=True)
    finally:
        run.finish()
    assert calls and all(c is False for c in calls)
