"""Checkpoints of the local engine in verl's layout, written atomically.

``RUN_DIR/checkpoints/global_step_N/`` holds an HF checkpoint (``save_pretrained``: config,
safetensors, tokenizer), so ``rlboundary probe`` and any HF tool read it, plus
``optim_state.pt`` (optimizer, scheduler, critic, torch RNG: tensors and plain types only, read
with ``torch.load(weights_only=True)``, so a checkpoint from elsewhere cannot run code; see
:func:`read_tensors`) and ``trainer_state.json`` (the
driver's state: data order, KL coefficient, W&B run id). A checkpoint is written under a hidden
``.tmp_*`` name and renamed when complete, so a directory named ``global_step_N`` is always
whole; ``latest_checkpointed_iteration.txt`` names the newest one, as verl's does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from typing import Any

from rlboundary.errors import UserError
from rlboundary.fileio import STORAGE_ERRNOS, free_mib

STATE_FILE = "trainer_state.json"
TRACKER = "latest_checkpointed_iteration.txt"


def checkpoints_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def step_dir(run_dir: str, step: int) -> str:
    return os.path.join(checkpoints_dir(run_dir), f"global_step_{int(step)}")


def complete_steps(run_dir: str) -> list[int]:
    """Steps of the complete checkpoints under ``RUN_DIR/checkpoints``, ascending."""
    root = checkpoints_dir(run_dir)
    if not os.path.isdir(root):
        return []
    steps = []
    for name in os.listdir(root):
        m = re.fullmatch(r"global_step_(\d+)", name)
        if m and os.path.exists(os.path.join(root, name, STATE_FILE)):
            steps.append(int(m.group(1)))
    return sorted(steps)


class UntrustedCheckpoint(UserError):
    """A checkpoint file that only a pickle (which can run code) could read."""


def read_tensors(path: str, trust: bool = False) -> dict[str, Any]:
    """A ``torch.save`` file of tensors and plain types (``optim_state.pt``), read with
    ``torch.load(weights_only=True)``: nothing in it can run code. A file that needs pickle (an
    old checkpoint, or one crafted to run code) raises :class:`UntrustedCheckpoint` naming it,
    unless ``trust`` (``trainer.trust_checkpoint=true``, for checkpoints you made yourself)."""
    import pickle

    import torch

    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust:
            raise UntrustedCheckpoint(
                f"{path} holds objects only pickle can read, and pickle can run code: refusing "
                f"to load it ({' '.join(str(e).split())[:120]}). If you made this checkpoint "
                "yourself, pass trainer.trust_checkpoint=true") from None
    return torch.load(path, weights_only=False)


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (full disk, quota, read-only, permissions)."""


_STORAGE_TEXT = ("No space left", "Disk quota", "Read-only file system", "iostream error",
                 "Permission denied", "inline_container")


def _storage_error(e: BaseException) -> bool:
    return getattr(e, "errno", None) in STORAGE_ERRNOS or any(t in str(e) for t in _STORAGE_TEXT)


def _reason(e: BaseException) -> str:
    code = getattr(e, "errno", None)
    return os.strerror(code) if code else " ".join(str(e).split())[:120]


def _last(run_dir: str) -> str:
    done = complete_steps(run_dir)
    where = step_dir(run_dir, done[-1]) if done else "none yet"
    return (f"the last complete checkpoint is {where}; free space (or choose another run_dir) "
            "and run the same command again to resume from it")


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _check_space(run_dir: str, final: str) -> None:
    """Refuse, before writing, a checkpoint the disk cannot hold: its size is the newest
    complete checkpoint's (plus 10%); the first one is not checked."""
    done = complete_steps(run_dir)
    if not done:
        return
    need = int(_size(step_dir(run_dir, done[-1])) * 1.1)
    free = shutil.disk_usage(checkpoints_dir(run_dir)).free
    if free < need:
        raise CheckpointWriteError(f"not enough space to write {final}: it needs about "
                                   f"{need / 2**20:.1f} MiB and {free / 2**20:.1f} MiB are free; "
                                   f"{_last(run_dir)}")


def save(run_dir: str, step: int, write_model: Callable[[str], None],
         state: dict[str, Any]) -> str:
    """Write checkpoint ``step``: ``write_model(tmp_dir)`` fills the HF files, then the driver
    ``state`` goes in last and the directory is renamed into place. Returns its path.

    A full disk, a quota, a read-only file system or a permission error raises
    :class:`CheckpointWriteError` (one line: what failed, the last complete checkpoint, how to
    resume) with the temporary folder removed; so does a disk without room for a checkpoint
    the size of the last one, before anything is written."""
    root = checkpoints_dir(run_dir)
    os.makedirs(root, exist_ok=True)
    final = step_dir(run_dir, step)
    _check_space(run_dir, final)
    tmp = os.path.join(root, f".tmp_global_step_{int(step)}_{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        write_model(tmp)
        with open(os.path.join(tmp, STATE_FILE), "w") as fh:
            json.dump({"global_step": int(step), **state}, fh, indent=2, sort_keys=True)
    except BaseException as e:  # torch reports a full disk as a RuntimeError; Ctrl-C too
        shutil.rmtree(tmp, ignore_errors=True)   # nothing half-written stays behind
        if not isinstance(e, (OSError, RuntimeError)) or not _storage_error(e):
            raise
        done = complete_steps(run_dir)
        need = f", needs about {_size(step_dir(run_dir, done[-1])) / 2**20:.1f} MiB" if done else ""
        raise CheckpointWriteError(f"could not write {final}: {_reason(e)} ({free_mib(root)} "
                                   f"free{need}); nothing partial was left; {_last(run_dir)}"
                                   ) from None
    if os.path.exists(final):  # an earlier, interrupted attempt at this very step
        shutil.rmtree(final)
    os.rename(tmp, final)
    tracker_tmp = os.path.join(root, f".{TRACKER}.{os.getpid()}")
    with open(tracker_tmp, "w") as fh:
        fh.write(str(int(step)))
    os.replace(tracker_tmp, os.path.join(root, TRACKER))
    return final


def load_state(run_dir: str, step: int) -> dict[str, Any]:
    with open(os.path.join(step_dir(run_dir, step), STATE_FILE)) as fh:
        return json.load(fh)


def clean_partial(run_dir: str) -> list[str]:
    """Remove half-written ``.tmp_*`` checkpoints left by a killed run; returns their names."""
    root = checkpoints_dir(run_dir)
    if not os.path.isdir(root):
        return []
    gone = [n for n in os.listdir(root) if n.startswith(".tmp_global_step_")]
    for name in gone:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return gone


def prune(run_dir: str, keep_last: int | None, protect: set[int] = frozenset()) -> list[int]:
    """Delete all but the newest ``keep_last`` complete checkpoints, never one in ``protect``
    (e.g. still being probed). ``None`` or 0 keeps everything. Returns the deleted steps."""
    if not keep_last:
        return []
    steps = complete_steps(run_dir)
    doomed = [s for s in steps[:-int(keep_last)] if s not in protect]
    for s in doomed:
        shutil.rmtree(step_dir(run_dir, s), ignore_errors=True)
    return doomed
