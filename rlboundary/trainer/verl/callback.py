"""Probes from inside a verl run: a ``CheckpointCallback`` that hands each checkpoint to the
probe engine.

verl 0.9.1's V1 trainer calls ``on_save(trainer, global_step, checkpoint_dir, async_save)`` after
every save, in its ``TaskRunnerV1`` Ray actor, with ``checkpoint_dir`` =
``<trainer.default_local_dir>/global_step_N`` (here ``RUN_DIR/checkpoints/global_step_N``). The
class is named in ``trainer.checkpoint_callback_class``; ``VERL_USE_EXTERNAL_MODULES`` (set by
``launch.runtime_env``) imports this module in every process that imports verl. Its settings
come in the verl config's ``rlboundary`` node (``launch.callback_settings``); for a plain verl
command, ``rlboundary.integrations.verl.ProbeCallback`` composes them from the user's
``+rlboundary.*`` overrides instead.

On each save the callback (1) waits for the checkpoint to be complete when ``async_save``,
(2) finds HF weights in ``actor/huggingface`` (``cluster.hf_checkpoint=save``) or makes them
with verl's FSDP model merger (``merge``) into ``actor/huggingface_merged``, and (3) per
``trainer.probe``: ``sync`` probes here, before training goes on (CPU checks only: the
launcher refuses it on GPUs, see ``launch.check_supported``); ``async`` queues the probe on a
detached Ray actor holding ``cluster.probe_gpus`` GPUs of its own (the driver collects what is
left when training ends); ``after`` leaves it to the driver once training ends (the HF weights
are made here all the same).

verl lets an exception in this hook abort training. Ours never raises: a failure is written to
``RUN_DIR/probe_failures.jsonl``, printed, and logged to W&B as ``probe/failures``; the
checkpoint stays for ``rlboundary probe series=RUN_DIR/checkpoints`` later.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any

from verl.trainer.ppo.checkpoint_callback import CheckpointCallback

from rlboundary.results.failures import FAILURES, failures, record_failure  # noqa: F401
from rlboundary.results.metrics import upsert_metrics

VERL_METRICS = "verl_metrics.jsonl"   # verl's `file` logger (VERL_FILE_LOGGER_PATH)
# verl's names -> the local engine's, so `rlboundary report` plots both engines alike
TRAIN_ALIASES = {"critic/rewards/mean": "train/reward", "critic/score/mean": "train/score"}


def weights_ready(hf_dir: str, settle_s: float = 0.0) -> bool:
    """True when ``hf_dir`` holds config.json and complete weights: every shard its
    ``*.index.json`` names, or a single ``*.safetensors``/``*.bin``; with ``settle_s``, also
    unchanged in size over that many seconds (a file still being written grows)."""
    if not os.path.isfile(os.path.join(hf_dir, "config.json")):
        return False
    indexes = glob.glob(os.path.join(hf_dir, "*.index.json"))
    if indexes:
        with open(indexes[0]) as f:
            names = set(json.load(f).get("weight_map", {}).values())
        files = [os.path.join(hf_dir, n) for n in names]
    else:
        files = [p for p in glob.glob(os.path.join(hf_dir, "*"))
                 if p.endswith((".safetensors", ".bin"))]
    if not files or not all(os.path.isfile(p) for p in files):
        return False
    if settle_s > 0:
        sizes = [os.path.getsize(p) for p in files]
        time.sleep(settle_s)
        return sizes == [os.path.getsize(p) for p in files]
    return True


def wait_for_weights(hf_dir: str, timeout_s: float, poll_s: float = 5.0) -> None:
    """Block until :func:`weights_ready` (sizes settled for ``poll_s``); raises
    ``TimeoutError`` naming ``hf_dir`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not weights_ready(hf_dir, settle_s=min(poll_s, 1.0)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no complete HF weights in {hf_dir} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def merge_fsdp(actor_dir: str, target_dir: str) -> str:
    """HF weights for verl's FSDP actor checkpoint ``actor_dir`` (``model_world_size_W_rank_R
    .pt`` + ``huggingface/`` config and tokenizer) through ``verl.model_merger``, written to a
    temporary folder and renamed to ``target_dir``. From Python the merger needs
    ``hf_model_config_path`` explicitly; it writes bfloat16 weights. Raises FileNotFoundError
    without shards."""
    import shutil

    from verl.model_merger.base_model_merger import ModelMergerConfig
    from verl.model_merger.fsdp_model_merger import FSDPModelMerger

    if not glob.glob(os.path.join(actor_dir, "model_world_size_*_rank_0.pt")):
        raise FileNotFoundError(f"no FSDP model shards in {actor_dir} to merge")
    tmp = os.path.join(os.path.dirname(target_dir), f".{os.path.basename(target_dir)}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    conf = ModelMergerConfig(operation="merge", backend="fsdp", local_dir=actor_dir,
                             target_dir=tmp,
                             hf_model_config_path=os.path.join(actor_dir, "huggingface"))
    merger = FSDPModelMerger(conf)
    merger.merge_and_save()
    merger.cleanup()
    os.replace(tmp, target_dir)
    return target_dir


def hf_checkpoint(checkpoint_dir: str, how: str, async_save: bool, wait_s: float) -> str:
    """The HF model directory of verl checkpoint ``checkpoint_dir`` (``global_step_N``).

    ``how="save"``: ``actor/huggingface`` as verl wrote it (``save_contents`` with
    ``hf_model``); ``"merge"``: ``actor/huggingface_merged``, made once by :func:`merge_fsdp`.
    With ``async_save`` the weights may still be in flight: wait up to ``wait_s`` seconds.
    Raises FileNotFoundError when the weights are not there, TimeoutError after the wait."""
    actor = os.path.join(checkpoint_dir, "actor")
    saved = os.path.join(actor, "huggingface")
    if how == "merge":
        merged = os.path.join(actor, "huggingface_merged")
        if async_save:  # verl's async_save is Megatron's; the merger here reads FSDP shards
            raise ValueError("cluster.hf_checkpoint=merge reads FSDP shards; with async_save "
                             "(Megatron) use cluster.hf_checkpoint=save")
        if not weights_ready(merged):
            merge_fsdp(actor, merged)
        return merged
    if async_save:
        wait_for_weights(saved, wait_s)
    if not weights_ready(saved):
        raise FileNotFoundError(f"{saved} holds no HF weights: add hf_model to "
                                "actor_rollout_ref.actor.checkpoint.save_contents or set "
                                "cluster.hf_checkpoint=merge")
    return saved


def import_train_metrics(run_dir: str, path: str | None = None) -> int:
    """Copy verl's ``file`` logger lines (``path``, by default RUN_DIR/verl_metrics.jsonl;
    ``{"step", "data"}``) into RUN_DIR/metrics.jsonl as ``kind: "train"`` rows, verl's keys
    plus the local engine's aliases. verl's logger truncates its file when a run resumes, so
    this runs at every save and at the end. Returns the number of steps copied."""
    path = path or os.path.join(run_dir, VERL_METRICS)
    if not os.path.exists(path):
        return 0
    count = 0
    with open(path) as fh:
        lines = fh.readlines()
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        data = {k: float(v) for k, v in row.get("data", {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}
        data.update({new: data[old] for old, new in TRAIN_ALIASES.items() if old in data})
        upsert_metrics(run_dir, {"kind": "train", "step": int(row["step"]), **data})
        count += 1
    return count


def _log_wandb(step: int, results: Mapping[str, Any] | None, failed: bool = False) -> None:
    """Probe results (or a failure) into the W&B run verl opened in this process, if any."""
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is None:
        return
    from rlboundary.report.wandb_log import STEP_KEY, WandbLogger

    # verl logs with explicit steps: an uncommitted row joins its next one instead of moving
    # W&B's step past it (W&B drops rows whose step went backwards).
    if failed:
        wandb.run.log({STEP_KEY: int(step), "probe/failures": 1}, commit=False)
        return
    logger = WandbLogger(run=wandb.run, commit=False)
    for dataset, metrics in (results or {}).items():
        logger.log_metrics(step, dataset, metrics)


def actor_name(run_dir: str) -> str:
    """The detached probe actor's Ray name for ``run_dir`` (the driver finds it by this)."""
    digest = hashlib.sha256(os.path.abspath(run_dir).encode()).hexdigest()[:12]
    return f"rlboundary-probe-{digest}"


def kill_actor(run_dir: str) -> bool:
    """Kill the detached probe actor of ``run_dir`` if one is alive; True if one was."""
    import ray

    try:
        ray.kill(ray.get_actor(actor_name(run_dir)))
        return True
    except ValueError:
        return False


class ProbeActor:
    """Ray actor (``trainer.probe=async``): probes checkpoints in the order submitted, on GPUs
    of its own. ``collect()`` runs after every queued probe (actor calls run in order) and
    returns the results nobody ``claim``-ed yet."""

    def __init__(self, settings: Mapping[str, Any], redo: str | None = None):
        self.settings, self.redo = settings, redo
        self.done: dict[int, dict] = {}

    def probe(self, path: str, step: int, checkpoint_dir: str) -> dict | None:
        from rlboundary.probing.runner import probe_checkpoint

        try:
            self.done[step] = probe_checkpoint(path, step, self.settings)
            return self.done[step]
        except Exception as e:  # noqa: BLE001 - recorded, never raised into training
            record_failure(self.settings["run_dir"], step, checkpoint_dir, e, self.redo)
            return None

    def claim(self, step: int) -> None:
        self.done.pop(step, None)

    def collect(self) -> dict[int, dict]:
        out, self.done = self.done, {}
        return out


class ProbeCallback(CheckpointCallback):
    """verl checkpoint callback: probe each ``global_step_N`` as rlboundary's local engine
    does, into the same run directory (``rlboundary report`` and ``--compare`` read it).

    ``settings``: what ``launch.callback_settings`` returns (``run_dir``, ``probe``,
    ``settings``, ``hf_checkpoint``, ``save_wait_s``, ``probe_gpus``; optional
    ``train_metrics``, the path of verl's file logger, ``redo``, the command a failure record
    names, and ``drain_at_end``: at the last
    step's save, wait for the async probes, as no driver of ours is there to collect them);
    None reads them from the verl config's ``rlboundary`` node. Raises ValueError when neither
    holds them. Never raises out of ``on_save`` (a probe failure is recorded, training goes
    on)."""

    def __init__(self, config=None, settings: Mapping[str, Any] | None = None):
        super().__init__(config)
        if settings is None:
            from omegaconf import OmegaConf

            node = config.get("rlboundary") if config is not None else None
            if node is None or "settings" not in node:
                raise ValueError("this ProbeCallback reads the `rlboundary` node that "
                                 "`rlboundary train engine=verl` adds to verl's config; in a "
                                 "plain verl command use rlboundary.integrations.verl."
                                 "ProbeCallback")
            settings = OmegaConf.to_container(node, resolve=True)
        self.rb = dict(settings)
        self.run_dir = self.rb["run_dir"]
        self.actor, self.pending, self.base_submitted = None, {}, False

    def on_save(self, trainer, global_step: int, checkpoint_dir: str, async_save: bool = False,
                **kwargs) -> None:
        try:
            import_train_metrics(self.run_dir, self.rb.get("train_metrics"))
            self._collect_finished()
            if self.rb["probe"] == "off":
                return
            path = hf_checkpoint(checkpoint_dir, self.rb["hf_checkpoint"], async_save,
                                 float(self.rb["save_wait_s"]))
            if self.rb["probe"] == "after":  # HF weights are ready for the driver's probes
                return
            if not self.base_submitted:  # the base as step 0, as the local engine does
                self.base_submitted = True
                self._probe(self.rb["settings"]["base_path"], 0, checkpoint_dir)
            self._probe(path, global_step, checkpoint_dir)
            last = getattr(trainer, "total_training_steps", None)
            if self.rb.get("drain_at_end") and last is not None and global_step >= last:
                self._collect_finished(wait=True)
        except Exception as e:  # noqa: BLE001 - verl would abort training on a raise
            try:
                record_failure(self.run_dir, global_step, checkpoint_dir, e, self.rb.get("redo"))
                _log_wandb(global_step, None, failed=True)
            except Exception:  # noqa: BLE001 - the record itself failed (disk full?)
                traceback.print_exc()

    def _probe(self, path: str, step: int, checkpoint_dir: str) -> None:
        if self.rb["probe"] == "sync":
            from rlboundary.probing.runner import probe_checkpoint

            _log_wandb(step, probe_checkpoint(path, step, self.rb["settings"]))
        else:
            self.pending[step] = self._actor().probe.remote(path, step, checkpoint_dir)

    def _actor(self):
        import ray

        if self.actor is None:
            settings = {**self.rb["settings"], "progress": False,
                        "probe": {**self.rb["settings"]["probe"], "workers": 1}}
            kill_actor(self.run_dir)  # one left by a crashed run holds a GPU and old settings
            self.actor = ray.remote(ProbeActor).options(
                name=actor_name(self.run_dir), lifetime="detached",
                num_cpus=1, num_gpus=int(self.rb["probe_gpus"]),
                runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
            ).remote(settings, self.rb.get("redo"))
        return self.actor

    def _collect_finished(self, wait: bool = False) -> None:
        """Log to W&B the async probes that have finished (with ``wait``: all of them, once
        done; the actor is then killed), and claim them."""
        if not self.pending:
            return
        import ray

        refs = list(self.pending.values())
        if wait:
            print(f"[rlboundary] waiting for {len(refs)} probe(s) of the last checkpoints",
                  flush=True)
        finished, _ = ray.wait(refs, num_returns=len(refs), timeout=None if wait else 0)
        for step, ref in list(self.pending.items()):
            if ref in finished:
                result = ray.get(ref)
                _log_wandb(step, result, failed=result is None)
                self.actor.claim.remote(step)
                del self.pending[step]
        if wait:
            kill_actor(self.run_dir)
            self.actor = None
