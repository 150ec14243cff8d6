"""Probes for a plain verl command: rlboundary's checkpoint callback without rlboundary's
launcher.

Add to your own ``python -m verl.trainer.main_ppo ...``::

    trainer.checkpoint_callback_class=rlboundary.integrations.verl.ProbeCallback

and, optionally, ``+rlboundary.KEY=VALUE`` for any setting of ``rlboundary probe`` (``n``,
``probe.datasets``, ``sampling.*``, ``sampler``, ``run_dir``, ``base.path``, ``recipe``,
``trainer.probe``, ``cluster.probe_gpus``, ...). verl 0.9.1's V1 trainer loads the class by its
name (``verl.utils.import_utils.load_class_from_fqn``) in its TaskRunner and calls ``on_save``
after every save; no environment variable is needed. What is not set comes from the verl
config, then from conf/preset/beside.yaml:

- ``base.path``: ``actor_rollout_ref.model.path`` (the model training starts from);
- ``run_dir``: ``trainer.default_local_dir`` (results beside verl's ``global_step_N`` folders,
  so ``rlboundary report DIR`` reads them);
- ``sampling.max_new_tokens``: ``data.max_response_length``;
- ``cluster.hf_checkpoint``: ``save`` when ``actor_rollout_ref.actor.checkpoint.save_contents``
  holds ``hf_model``, else ``merge`` (verl's model merger, on the TaskRunner's CPU);
- training metrics: read from verl's ``file`` logger when ``trainer.logger`` lists it.

``trainer.probe``: ``async`` (the default: a detached Ray actor with ``cluster.probe_gpus`` GPUs
of its own; at the last step's save the callback waits for it, as no rlboundary driver is there
to collect) or ``sync`` (in the TaskRunner, between steps: CPU only). ``after`` needs
rlboundary's launcher and is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rlboundary.errors import UserError
from rlboundary.integrations.settings import (
    beside_overrides,
    compose_beside,
    overrides_from,
    probe_command,
    setting_keys,
    shell_line,
)
from rlboundary.trainer.verl import callback, launch

__all__ = ["ProbeCallback", "callback_settings_for"]


def _verl_file_logger(config) -> str | None:
    """Where verl 0.9.1's ``file`` logger writes in this process (verl/utils/tracking.py's
    FileLogger), or None when ``trainer.logger`` does not list it."""
    if "file" not in list(config.trainer.get("logger") or []):
        return None
    path = os.environ.get("VERL_FILE_LOGGER_PATH")
    if path:
        return path
    root = os.path.expanduser(os.environ.get("VERL_FILE_LOGGER_ROOT", "."))
    return os.path.join(root, str(config.trainer.project_name),
                        f"{config.trainer.experiment_name}.jsonl")


def callback_settings_for(config) -> dict[str, Any]:
    """What the callback needs, from a verl config whose ``rlboundary`` node (possibly absent)
    holds the user's settings. Raises ``UserError`` for a bad setting or
    ``trainer.probe=after``."""
    from omegaconf import OmegaConf

    node = config.get("rlboundary")
    user = overrides_from(OmegaConf.to_container(node, resolve=True) if node is not None else {})
    words = beside_overrides(
        user, base_path=str(config.actor_rollout_ref.model.path),
        run_dir=os.path.abspath(str(config.trainer.default_local_dir)),
        max_new_tokens=config.data.get("max_response_length"))
    cfg, settings = compose_beside(words)
    mode = cfg["trainer"]["probe"]
    if mode == "after":
        raise UserError("rlboundary.trainer.probe=after needs `rlboundary train engine=verl` "
                        "(its driver probes once verl returns); here use async or sync, or "
                        "probe later: rlboundary probe series=" + cfg["run_dir"])
    contents = list(config.actor_rollout_ref.actor.get("checkpoint", {}).get("save_contents")
                    or [])
    how = cfg["cluster"]["hf_checkpoint"] if "cluster.hf_checkpoint" in setting_keys(user) \
        else ("save" if "hf_model" in contents else "merge")
    return {**launch.callback_settings(cfg, settings), "hf_checkpoint": how,
            "train_metrics": _verl_file_logger(config), "drain_at_end": True,
            "redo": shell_line(probe_command(words) + [f"series={cfg['run_dir']}"])}


class ProbeCallback(callback.ProbeCallback):
    """verl ``CheckpointCallback`` for a plain ``main_ppo`` command: each ``global_step_N``
    probed as rlboundary's launcher would, settings from ``+rlboundary.*`` (see the module
    docstring). A bad setting fails at start-up with one line; a failing probe never stops
    training (recorded in RUN_DIR/probe_failures.jsonl)."""

    def __init__(self, config=None, settings: Mapping[str, Any] | None = None):
        if settings is None:
            if config is None:
                raise ValueError("ProbeCallback is built by verl with its trainer config")
            settings = callback_settings_for(config)
        super().__init__(config, settings)
