"""Where training metrics go: RUN_DIR/metrics.jsonl, live W&B, and the console.

W&B keys follow verl's namespaces (``train/``, ``actor/``, ``critic/``, ``response_length/``,
``timing_s/``) against the step metric ``global_step``; probe results arrive later than the
step they measure, so they go to ``probe/<dataset>/<metric>`` against their own step metric
``probe/step`` (W&B drops a ``log`` at a step earlier than its internal one, so neither ever
passes ``step=``). The run id is kept in the checkpoint state, so a resumed run continues the
same W&B run instead of starting a second one. Offline when no API key is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import Any

from rlboundary.report.wandb_log import is_finite_number
from rlboundary.results.metrics import upsert_metrics

TRAIN_NAMESPACES = ("train", "actor", "critic", "response_length", "timing_s")


class Tracker:
    """``log_train(step, metrics)`` and ``log_probe(step, {dataset: metrics})`` to every
    configured backend (``trainer.logger``: ``console``, ``wandb``); metrics.jsonl always."""

    def __init__(self, run_dir: str, trainer_cfg: Mapping[str, Any], config: Mapping[str, Any],
                 wandb_id: str | None = None):
        self.run_dir = run_dir
        self.backends = list(trainer_cfg.get("logger") or [])
        self.run = self._probe_logger = None
        self.wandb_id = wandb_id
        if "wandb" in self.backends:
            self._start_wandb(trainer_cfg, config, wandb_id)

    def _start_wandb(self, trainer_cfg, config, wandb_id) -> None:
        import wandb

        from rlboundary.report.wandb_log import WandbLogger, resolve_mode

        os.environ.setdefault("WANDB_SILENT", "true")
        self.wandb_id = wandb_id or uuid.uuid4().hex[:12]
        self.run = wandb.init(project=trainer_cfg["project_name"],
                              name=trainer_cfg["experiment_name"], id=self.wandb_id,
                              resume="allow", dir=self.run_dir, config=dict(config),
                              mode=resolve_mode(), settings=wandb.Settings(console="off"))
        self.run.define_metric("global_step")
        for ns in TRAIN_NAMESPACES:
            self.run.define_metric(f"{ns}/*", step_metric="global_step")
        self._probe_logger = WandbLogger(run=self.run)

    def log_train(self, step: int, metrics: Mapping[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if is_finite_number(v)}
        upsert_metrics(self.run_dir, {"kind": "train", "step": int(step), **clean})
        if self.run is not None:
            self.run.log({"global_step": int(step), **clean})

    def log_probe(self, step: int, results: Mapping[str, Mapping[str, float]]) -> None:
        """Probe metrics are already in metrics.jsonl (the probe runner wrote them)."""
        if self._probe_logger is not None:
            for dataset, metrics in results.items():
                self._probe_logger.log_metrics(step, dataset, metrics)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
