"""Probes for TRL and any Hugging Face ``Trainer``: one ``TrainerCallback``.

::

    from rlboundary.integrations import ProbeCallback
    trainer = GRPOTrainer(..., callbacks=[ProbeCallback("n=64")])

At ``on_train_begin`` the base model (the model the Trainer starts from, by its
``name_or_path``; or ``base.path=``) is probed as step 0; at every ``on_save`` the checkpoint
the Trainer just wrote (``OUTPUT_DIR/checkpoint-N``) is probed as step N. Each probe is
``rlboundary probe`` in a subprocess of its own, one at a time in step order, so training
goes on while it runs (on a machine with cores or GPUs to spare; ``threads`` and ``env`` say
which). Results go to the Trainer's ``output_dir`` in rlboundary's run layout
(``probes/``, ``metrics.jsonl``, ``report.html``: ``rlboundary report OUTPUT_DIR`` and
``--compare`` read it), and, when a probe finishes, into the Trainer's active W&B run
(``probe/<dataset>/<metric>`` against ``probe/step``) and TensorBoard (``report_to``).
The Trainer's own logs are copied into ``metrics.jsonl`` (``train/<key>``) for the report's
training curves. ``on_train_end`` waits for the probes still queued.

Settings are ``rlboundary probe``'s (``key=value`` words, a ``recipe=``), on top of
conf/preset/beside.yaml and what the Trainer tells: ``base.path`` (the model's
``name_or_path``), ``run_dir`` (``output_dir``), ``sampling.max_new_tokens`` (TRL's
``max_completion_length``). A probe that fails is recorded in
``OUTPUT_DIR/probe_failures.jsonl`` with the command that redoes it and its log
(``OUTPUT_DIR/probe_logs/step_N.log``); nothing here ever raises into the Trainer. Only the
main process (``state.is_world_process_zero``) probes.

Compared with TRL's own evaluation (entropy and rewards on the eval set during training), this
adds pass@k up to k=n, base-model perplexity of the samples and the per-problem ledger against
the base, measured as the study did (arXiv 2504.13837).
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Mapping
from typing import Any

from transformers import TrainerCallback

from rlboundary.integrations.settings import (
    beside_overrides,
    compose_beside,
    probe_command,
    shell_line,
)
from rlboundary.report.wandb_log import is_finite_number
from rlboundary.results.failures import record_failure
from rlboundary.results.metrics import read_metrics, upsert_metrics

#: Environment of the Trainer's distributed launch, kept from the probe's subprocess (it is
#: one process of its own, not a rank of the training job).
DISTRIBUTED_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                   "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
LOGGERS = ("wandb", "tensorboard")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _base_of(model: Any) -> str | None:
    """The directory or hub id ``model`` was loaded from (``name_or_path``), if any."""
    for obj in (model, getattr(model, "config", None)):
        name = getattr(obj, "name_or_path", None) or getattr(obj, "_name_or_path", None)
        if name:
            return str(name)
    return None


def _reporters(args: Any) -> set[str]:
    to = args.report_to
    to = [to] if isinstance(to, str) else list(to or [])
    return set(LOGGERS) if "all" in to else {r for r in to if r in LOGGERS}


class ProbeCallback(TrainerCallback):
    """Probe the base and every checkpoint a ``transformers.Trainer`` (TRL's trainers included)
    saves, in a subprocess, into its ``output_dir``.

    ``overrides``: ``rlboundary probe`` settings (``"n=64"``, ``"probe.datasets=[math500]"``,
    ``"base.path=Qwen/Qwen2.5-7B"``); ``recipe``: a recipe file; ``threads``: torch threads of
    the probe process (``auto``: half the cores); ``env``: more environment for it (e.g.
    ``{"CUDA_VISIBLE_DEVICES": "1"}`` to probe on a GPU training does not use); ``wait_at_end``:
    ``on_train_end`` waits for the queued probes (else they are left, and the failures file
    says how to run them)."""

    def __init__(self, *overrides: str, recipe: str | None = None, threads: int | str = "auto",
                 env: Mapping[str, str] | None = None, wait_at_end: bool = True):
        self.user = ([f"recipe={recipe}"] if recipe else []) + [str(o) for o in overrides]
        self.threads = max(1, _cores() // 2) if threads == "auto" else int(threads)
        self.env = dict(env or {})
        self.wait_at_end = wait_at_end
        self.words: list[str] | None = None      # composed once, at on_train_begin
        self.run_dir: str | None = None
        self.queue: list[tuple[int, str | None]] = []
        self.running: tuple[int, str | None, subprocess.Popen, list[str]] | None = None
        self.reporters: set[str] = set()
        self.logged: dict[str, Any] = {}          # reporter -> its writer, made once

    # ---------------------------------------------------------------- Trainer events
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        self._safely(0, None, self._begin, args, model)

    def on_save(self, args, state, control, **kwargs):
        if self.words is None:
            return
        step = int(state.global_step)
        self.queue.append((step, os.path.join(args.output_dir, f"checkpoint-{step}")))
        self._safely(step, None, self._pump)

    def on_step_end(self, args, state, control, **kwargs):
        if self.words is not None and (self.running or self.queue):
            self._safely(int(state.global_step), None, self._pump)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.words is None or not logs:
            return
        row = {("train/" + k if "/" not in k else k): float(v) for k, v in logs.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if row:
            self._safely(int(state.global_step), None, upsert_metrics, self.run_dir,
                         {"kind": "train", "step": int(state.global_step), **row}, True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.words is None:
            return
        if self.wait_at_end and (self.running or self.queue):
            left = len(self.queue) + (self.running is not None)
            print(f"[rlboundary] training done; waiting for {left} probe(s) (logs in "
                  f"{os.path.join(self.run_dir, 'probe_logs')})", flush=True)
        self._safely(int(state.global_step), None, self._pump, self.wait_at_end)

    # ---------------------------------------------------------------- the work
    def _safely(self, step: int, checkpoint: str | None, fn, *a) -> None:
        """Run ``fn``; a failure is recorded (with the error) instead of raised into training."""
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - the Trainer must never see our failure
            try:
                if self.run_dir:
                    record_failure(self.run_dir, step, checkpoint or "", e)
                else:
                    print(f"[rlboundary] probes are off for this run: {e}", flush=True)
            except Exception:  # noqa: BLE001 - the record itself failed (disk full?)
                traceback.print_exc()

    def _begin(self, args, model) -> None:
        run_dir = os.path.abspath(args.output_dir)
        words = beside_overrides(self.user, base_path=_base_of(model), run_dir=run_dir,
                                 max_new_tokens=getattr(args, "max_completion_length", None))
        compose_beside(words)          # a bad setting is one line now, not a failure per save
        self.run_dir, self.words = run_dir, words
        self.reporters = _reporters(args)
        self.queue.append((0, None))   # the base model, as step 0
        self._pump()

    def _pump(self, wait: bool = False) -> None:
        """Finish the running probe if it ended (``wait``: wait for it and every queued one),
        then start the next."""
        while True:
            if self.running is not None:
                step, ckpt, proc, cmd = self.running
                if wait:
                    proc.wait()
                if proc.poll() is None:
                    return
                self.running = None
                self._finish(step, ckpt, proc.returncode, cmd)
            if not self.queue:
                return
            self._start(*self.queue.pop(0))
            if not wait:
                return

    def _log_path(self, step: int) -> str:
        folder = os.path.join(self.run_dir, "probe_logs")
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f"step_{step}.log")

    def _start(self, step: int, ckpt: str | None) -> None:
        cmd = probe_command(self.words, ckpt, step)
        env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
        threads = str(self.threads)
        env.update({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                    "TOKENIZERS_PARALLELISM": "false", **self.env})
        with open(self._log_path(step), "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "rlboundary.cli", *cmd[1:]],
                                    stdout=log, stderr=subprocess.STDOUT, env=env,
                                    stdin=subprocess.DEVNULL)
        self.running = (step, ckpt, proc, cmd)

    def _finish(self, step: int, ckpt: str | None, rc: int, cmd: list[str]) -> None:
        if rc != 0:
            log = self._log_path(step)
            with open(log, errors="replace") as fh:
                lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
            last = lines[-1] if lines else f"exit status {rc}"
            record_failure(self.run_dir, step, ckpt or "base model",
                           RuntimeError(f"{last} (log: {log})"), redo=shell_line(cmd))
            self._log(step, failed=True)
            return
        self._log(step)

    def _log(self, step: int, failed: bool = False) -> None:
        """One finished probe into the Trainer's W&B run and TensorBoard, if it reports there."""
        if "wandb" in self.reporters:
            import wandb

            if wandb.run is not None:
                from rlboundary.report.wandb_log import STEP_KEY, WandbLogger

                if failed:
                    wandb.run.log({STEP_KEY: step, "probe/failures": 1})
                else:
                    if "wandb" not in self.logged:
                        self.logged["wandb"] = WandbLogger(run=wandb.run)
                    self.logged["wandb"].log_run_step(self.run_dir, step)
        if "tensorboard" in self.reporters and not failed:
            if "tensorboard" not in self.logged:
                from torch.utils.tensorboard import SummaryWriter

                self.logged["tensorboard"] = SummaryWriter(os.path.join(
                    self.run_dir, "runs", "rlboundary_probes"))
            writer = self.logged["tensorboard"]
            for row in read_metrics(self.run_dir):
                if row.get("kind", "probe") == "probe" and row["step"] == step:
                    for key, value in row.items():
                        if key != "step" and not isinstance(value, (bool, str)) \
                                and is_finite_number(value):
                            writer.add_scalar(f"probe/{row['dataset']}/{key}", value, step)
            writer.flush()
