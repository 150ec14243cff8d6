"""End to end: `rlboundary train` with the local engine through Ray, for each of the six
algorithms, and a run killed with SIGKILL then resumed equals one never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from rlboundary.cli import main

pytestmark = pytest.mark.slow

# Small and fast: 4 prompts x 4 samples, short responses, one thread per Ray actor.
QUICK = ["data.train_batch_size=4", "rollout.n=4", "rollout.response_length=48",
         "actor.ppo_mini_batch_size=2", "critic.ppo_mini_batch_size=2",
         "trainer.logger=[console]", "progress=false", "ray.num_cpus=2",
         "trainer.threads=1", "probe.threads=1", "actor.optim.lr=1e-3",
         "actor.optim.lr_warmup_steps=0"]


def train_lines(run_dir: str) -> dict[int, dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return {r["step"]: r for r in rows if r.get("kind") == "train"}


@pytest.mark.parametrize("algorithm,extra", [
    ("ppo", []), ("grpo", ["actor.use_kl_loss=true"]), ("rloo", []),
    ("reinforce_pp", ["algorithm.use_kl_in_reward=true"]), ("remax", []), ("dapo", []),
    ("rloo", ["algorithm.rollout_correction.bypass_mode=true"]),
])
def test_each_algorithm_trains_three_steps(trained_base, tmp_path, algorithm, extra):
    run = str(tmp_path / algorithm)
    assert main(["train", f"algorithm={algorithm}", f"base.path={trained_base}", f"run_dir={run}",
                 "trainer.total_training_steps=3", "trainer.save_freq=3", "trainer.probe=off",
                 *QUICK, *extra]) == 0
    lines = train_lines(run)
    assert sorted(lines) == [1, 2, 3]
    for row in lines.values():
        assert 0.0 <= row["train/score"] <= 1.0
        # The reward is the score less DAPO's overlong penalty f(L) = max(0, L - (48 - 16)) / 16
        # (response_length 48, buffer 16, factor 1): f is convex and rising, so the batch's mean
        # penalty lies in [f(mean L), f(max L)]. The reward is a float32 mean, the score a
        # float64 one: 1e-5 absorbs the rounding, far below the smallest penalty (1/16 / 16).
        if algorithm == "dapo":
            pen = lambda length: max(0.0, length - (48 - 16)) / 16
            assert (row["train/score"] - pen(row["response_length/max"]) - 1e-5
                    <= row["train/reward"]
                    <= row["train/score"] - pen(row["response_length/mean"]) + 1e-5)
        else:
            assert row["train/reward"] == pytest.approx(row["train/score"])
        assert row["timing_s/step"] > 0 and "actor/pg_loss" in row and "actor/kl" in row
    assert ("critic/vf_loss" in lines[3]) == (algorithm == "ppo")
    assert ("actor/kl_loss" in lines[3]) == ("actor.use_kl_loss=true" in extra)
    assert ("actor/reward_kl_penalty" in lines[3]) == bool("in_reward" in " ".join(extra))
    if algorithm == "dapo":
        assert all(r["train/gen_rounds"] >= 1 for r in lines.values())
    ckpt = os.path.join(run, "checkpoints", "global_step_3")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "optim_state.pt",
                 "trainer_state.json"):
        assert os.path.exists(os.path.join(ckpt, name)), name
    before = load_file(os.path.join(trained_base, "model.safetensors"))
    after = load_file(os.path.join(ckpt, "model.safetensors"))
    moved = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert moved > 0, "three steps of RL did not change the policy"


def _train_cmd(base: str, run: str) -> list[str]:
    return [sys.executable, "-m", "rlboundary.cli", "train", f"base.path={base}",
            f"run_dir={run}", "trainer.total_training_steps=4", "trainer.save_freq=2",
            "trainer.probe=sync", "n=8", "probe.limit=12", "probe.chunk=4",
            "sampling.max_new_tokens=48", *QUICK]


def test_sigkill_then_resume_equals_uninterrupted(trained_base, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    straight = str(tmp_path / "straight")
    subprocess.run(_train_cmd(trained_base, straight), check=True, env=env,
                   capture_output=True, timeout=900)

    killed = str(tmp_path / "killed")
    proc = subprocess.Popen(_train_cmd(trained_base, killed), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = os.path.join(killed, "checkpoints", "global_step_2")
    deadline = time.time() + 600
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(killed, "checkpoints", "global_step_4"))
    subprocess.run(_train_cmd(trained_base, killed) + ["resume=auto"], check=True, env=env,
                   capture_output=True, timeout=900)

    a, b = train_lines(straight), train_lines(killed)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4]
    for step in (3, 4):
        for key, value in a[step].items():
            if not key.startswith("timing_s/") and key != "kind":
                assert b[step][key] == pytest.approx(value, rel=1e-6, abs=1e-7), (step, key)
    for step in (0, 2, 4):
        name = f"step_{step:08d}.parquet"
        ra = pd.read_parquet(os.path.join(straight, "probes", "arithmetic", name))
        rb = pd.read_parquet(os.path.join(killed, "probes", "arithmetic", name))
        cols = [c for c in ra.columns if c != "checkpoint"]
        pd.testing.assert_frame_equal(ra[cols], rb[cols])
    wa = load_file(os.path.join(straight, "checkpoints", "global_step_4", "model.safetensors"))
    wb = load_file(os.path.join(killed, "checkpoints", "global_step_4", "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_training_into_a_run_dir_with_other_results_is_refused(trained_base, tmp_path):
    """The issue's third mixing case: a run directory holding a series probe, then a training
    run whose checkpoint lands on a stored step. The training's probe is refused with one line
    (exit 2) rather than mixed with, or silently replaced by, the other model's results."""
    import shutil

    series, run = tmp_path / "series", tmp_path / "run"
    shutil.copytree(trained_base, series / "step_2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    probe = [sys.executable, "-m", "rlboundary.cli", "probe", f"base.path={trained_base}",
             f"run_dir={run}", f"series={series}", "n=8", "probe.limit=8", "progress=false"]
    subprocess.run(probe, check=True, env=env, capture_output=True, timeout=600)
    stored = pd.read_parquet(run / "probes" / "arithmetic" / "step_00000002.parquet")
    r = subprocess.run([sys.executable, "-m", "rlboundary.cli", "train",
                        f"base.path={trained_base}", f"run_dir={run}", "n=8", "probe.limit=8",
                        "trainer.total_training_steps=2", "trainer.save_freq=2", *QUICK],
                       env=env, capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and "force" in r.stderr, r.stderr[-2000:]
    again = pd.read_parquet(run / "probes" / "arithmetic" / "step_00000002.parquet")
    pd.testing.assert_frame_equal(stored, again)
