"""Checkpoint layout: atomic saves, keep_last, and the probe runner reading both our layout
and verl's."""

from __future__ import annotations

import os
import shutil

import pytest

from rlboundary.probing.inputs import find_checkpoints
from rlboundary.trainer.local import checkpoint


def _hf_files(model_dir: str):
    def write(path: str) -> None:
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            shutil.copy(os.path.join(model_dir, name), path)
    return write


def test_save_is_atomic_and_tracked(random_tiny_model, tmp_path):
    run = str(tmp_path)
    path = checkpoint.save(run, 5, _hf_files(random_tiny_model), {"data": {"epoch": 0, "pos": 3}})
    assert path.endswith("checkpoints/global_step_5")
    assert checkpoint.complete_steps(run) == [5]
    assert checkpoint.load_state(run, 5) == {"global_step": 5, "data": {"epoch": 0, "pos": 3}}
    with open(os.path.join(run, "checkpoints", "latest_checkpointed_iteration.txt")) as fh:
        assert fh.read() == "5"

    def interrupted(path: str) -> None:
        _hf_files(random_tiny_model)(path)
        raise KeyboardInterrupt  # Ctrl-C mid-write: the half-written folder is removed

    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(run, 10, interrupted, {})
    assert checkpoint.clean_partial(run) == []
    # a process killed mid-write (SIGKILL: no handler runs) leaves its temporary folder
    left = os.path.join(run, "checkpoints", ".tmp_global_step_10_1")
    os.makedirs(left)
    _hf_files(random_tiny_model)(left)
    assert checkpoint.complete_steps(run) == [5]  # the half-written one is not taken
    assert [s for s, _ in find_checkpoints(checkpoint.checkpoints_dir(run))] == [5]
    assert checkpoint.clean_partial(run) == [".tmp_global_step_10_1"]


def test_keep_last_spares_protected(random_tiny_model, tmp_path):
    run = str(tmp_path)
    for step in (2, 4, 6, 8):
        checkpoint.save(run, step, _hf_files(random_tiny_model), {})
    assert checkpoint.prune(run, 2, protect={2}) == [4]
    assert checkpoint.complete_steps(run) == [2, 6, 8]
    assert checkpoint.prune(run, None) == []


def test_series_reads_verl_layout(random_tiny_model, tmp_path):
    for step in (20, 40):
        hf = tmp_path / f"global_step_{step}" / "actor" / "huggingface"
        hf.mkdir(parents=True)
        _hf_files(random_tiny_model)(str(hf))
    assert [s for s, _ in find_checkpoints(str(tmp_path))] == [20, 40]
