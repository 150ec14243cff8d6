"""Faults a long run meets (issue 23): a checkpoint that would run code, Ctrl-C and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from rlboundary.trainer.local.checkpoint import UntrustedCheckpoint, read_tensors


class _Payload:
    """Unpickling this calls ``open(path, "w")``: a file appears if the payload runs."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker, state = tmp_path / "pwned", tmp_path / "optim_state.pt"
    torch.save({"optim": {"state": {}}, "evil": _Payload(str(marker))}, state)
    with pytest.raises(UntrustedCheckpoint, match="trainer.trust_checkpoint=true") as e:
        read_tensors(str(state))
    assert str(state) in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()  # nothing ran
    read_tensors(str(state), trust=True)  # the explicit opt-in does unpickle (and so runs it)
    assert marker.exists()


def test_tensors_and_plain_types_load_without_pickle(tmp_path):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    path = tmp_path / "optim_state.pt"
    torch.save({"optim": opt.state_dict(), "sched": sched.state_dict(),
                "torch_rng": torch.get_rng_state()}, path)
    back = read_tensors(str(path))
    assert torch.equal(back["torch_rng"], torch.get_rng_state())
    assert back["sched"]["last_epoch"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, name", [(signal.SIGINT, 130, "Ctrl-C"),
                                             (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupt_ends_with_one_line_and_resumes(trained_base, tmp_path, sig, code, name):
    """Ctrl-C (to the process group, as a terminal sends it) or SIGTERM (to the CLI, as SLURM
    and `kill` do) during training: exit 128 + signal, one line naming the last checkpoint and
    the command that resumes; the resumed run says where it resumed from."""
    run = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "rlboundary.cli", "train", f"base.path={trained_base}",
           f"run_dir={run}", "trainer.total_training_steps=40", "trainer.save_freq=2",
           "trainer.probe=off", "data.train_batch_size=4", "rollout.n=4",
           "rollout.response_length=48", "actor.ppo_mini_batch_size=2",
           "trainer.logger=[console]", "progress=false", "ray.num_cpus=2", "trainer.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = os.path.join(run, "checkpoints", "global_step_2")
    deadline = time.time() + 600
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"rlboundary: {name}: training stopped during step"), err[-2000:]
    assert "global_step_" in last and "rlboundary train" in last
    assert "Traceback" not in err
    done = sorted(int(d.rsplit("_", 1)[1]) for d in os.listdir(os.path.join(run, "checkpoints"))
                  if d.startswith("global_step_"))
    assert done and not any(d.startswith(".tmp") for d in os.listdir(os.path.join(run, "checkpoints")))
    resumed = subprocess.run([*cmd, f"trainer.total_training_steps={done[-1] + 1}"], env=env,
                             capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {run} from {run}/checkpoints/global_step_{done[-1]}" in resumed.stdout
