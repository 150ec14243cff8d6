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
    # A terminal's Ctrl-C reaches a CLI that handles SIGINT; one started in the background by a
    # non-interactive shell (a CI runner may be one) inherits "ignore SIGINT" and never sees it.
    # So the interrupted run installs Python's handler itself, then runs the CLI as usual.
    interactive = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, "
                   "signal.default_int_handler); from rlboundary.cli import main; "
                   "sys.exit(main(sys.argv[1:]))", *cmd[3:]]
    proc = subprocess.Popen(interactive, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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


def test_a_damaged_result_is_named_redone_and_skipped_by_the_report(tmp_path, capsys):
    import pandas as pd

    from rlboundary.probing.plan import reuse_or_clear
    from rlboundary.report.load import load_probes
    from rlboundary.results.store import DamagedResult, ProbeStore, read_rows, write_parquet

    run = str(tmp_path)
    good, bad = ProbeStore(run, "arith", 0), ProbeStore(run, "arith", 3)
    table = pd.DataFrame({"problem_id": ["p1", "p2"], "n": [4, 4], "c": [1, 2]})
    for store in (good, bad):
        os.makedirs(store.dir, exist_ok=True)
        write_parquet(table, store.final, provenance={"n": 4})
    with open(bad.final, "r+b") as fh:  # cut short, as a full disk or a killed copy leaves it
        fh.truncate(100)
    with pytest.raises(DamagedResult, match="step_00000003.parquet is damaged"):
        read_rows(bad.final)
    assert load_probes(run)["step"].unique().tolist() == [0]  # the report skips it...
    assert "skipping damaged" in capsys.readouterr().err       # ...and says which
    assert not reuse_or_clear(bad, {"n": 4}, {}, "arith step 3")  # probed again
    assert not bad.done() and "damaged" in capsys.readouterr().out
    assert reuse_or_clear(good, {"n": 4}, {}, "arith step 0")  # an intact one is reused


def _fake_model(path: str) -> None:
    with open(os.path.join(path, "model.safetensors"), "wb") as fh:
        fh.write(b"\0" * 4096)


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    from rlboundary.trainer.local import checkpoint

    run = str(tmp_path)
    checkpoint.save(run, 25, _fake_model, {})

    def full(path: str) -> None:
        _fake_model(path)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(checkpoint.CheckpointWriteError) as e:
        checkpoint.save(run, 30, full, {})
    line = str(e.value)
    assert "global_step_30" in line and "No space left" in line and "global_step_25" in line
    assert "\n" not in line and checkpoint.complete_steps(run) == [25]
    assert [n for n in os.listdir(checkpoint.checkpoints_dir(run)) if n.startswith(".tmp")] == []
    # torch's own wording for the same fault (inline_container / iostream error)
    def torch_full(path: str) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    with pytest.raises(checkpoint.CheckpointWriteError):
        checkpoint.save(run, 30, torch_full, {})
    # a disk without room for a checkpoint the size of the last one: refused before writing
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: type("U", (), {"free": 10}))
    with pytest.raises(checkpoint.CheckpointWriteError, match="needs about .* MiB are free"):
        checkpoint.save(run, 30, _fake_model, {})
    assert checkpoint.complete_steps(run) == [25]


def _descends_from(pid: int, root: int) -> bool:
    """Whether ``root`` is ``pid`` or one of its ancestors (Linux /proc)."""
    while pid > 1:
        if pid == root:
            return True
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])  # field 4: the parent
        except (OSError, ValueError, IndexError):
            return False
    return False


def _probe_worker_pids(root: int) -> set[int]:
    """The probe actors started under process ``root`` (the training run this test started:
    its Ray workers are its descendants), never another run's on the same machine."""
    out = subprocess.run(["pgrep", "-f", "ray::ProbeWorker"], capture_output=True, text=True,
                         check=False).stdout
    return {int(p) for p in out.split() if _descends_from(int(p), root)}


@pytest.mark.slow
def test_a_killed_probe_worker_never_stops_training(trained_base, tmp_path):
    """The probe actor killed as the OOM killer would (SIGKILL), twice: Ray restarts it once
    and retries its probe; the second death is recorded in probe_failures.jsonl with the
    command that redoes it, and training runs to its end (exit 0, the last step probed)."""

    run = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "rlboundary.cli", "train", f"base.path={trained_base}",
           f"run_dir={run}", "trainer.total_training_steps=24", "trainer.save_freq=2",
           "trainer.probe=async", "n=8", "probe.limit=8", "data.train_batch_size=4",
           "rollout.n=4", "rollout.response_length=48", "actor.ppo_mini_batch_size=2",
           "trainer.logger=[console]", "progress=false", "ray.num_cpus=2", "trainer.threads=1",
           "probe.threads=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    killed: set[int] = set()
    deadline = time.time() + 600
    while len(killed) < 2 and proc.poll() is None and time.time() < deadline:
        alive = _probe_worker_pids(proc.pid) - killed
        if alive and os.path.exists(os.path.join(run, "checkpoints", "global_step_2")):
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            killed |= alive
        time.sleep(0.5)
    out, err = proc.communicate(timeout=900)
    assert len(killed) >= 2, "the run ended before its probe worker could be killed twice"
    assert proc.returncode == 0, err[-3000:]
    from rlboundary.results.failures import failures

    recs = failures(run)
    assert recs and all(r["error"] and os.path.isdir(r["checkpoint"]) for r in recs)
    assert "training goes on" in out and "rlboundary probe series=" in out
    assert os.path.exists(os.path.join(run, "probes", "arithmetic", "step_00000024.parquet"))


def test_a_full_disk_while_writing_a_result_is_one_line_and_keeps_the_old_file(tmp_path):
    import errno

    from rlboundary.fileio import StorageError, atomic_write, write_text

    path = tmp_path / "metrics.jsonl"
    write_text(str(path), "old\n")

    def full(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(StorageError, match="could not write .*metrics.jsonl: No space left") as e:
        atomic_write(str(path), full)
    assert "\n" not in str(e.value) and "MiB free" in str(e.value)
    assert path.read_text() == "old\n" and not list(tmp_path.glob("*.part"))
