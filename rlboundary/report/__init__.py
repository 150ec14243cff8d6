"""Reports of a run directory: HTML page with paper-ready figures, and W&B logging.

`write_report(run_dir)` writes RUN_DIR/report/index.html; `WandbLogger` / `log_run_dir` send
the same numbers to Weights & Biases (wandb is imported only when used).
"""

from rlboundary.report.html import write_report
from rlboundary.report.load import RunData, ledger, load_probes, load_run, summary
from rlboundary.results.metrics import load_metrics

__all__ = [
    "RunData",
    "WandbLogger",
    "ledger",
    "load_metrics",
    "load_probes",
    "load_run",
    "log_run_dir",
    "summary",
    "write_report",
]


def __getattr__(name: str):
    # Lazy so that importing the report never imports wandb.
    if name in ("WandbLogger", "log_run_dir"):
        from rlboundary.report import wandb_log

        return getattr(wandb_log, name)
    raise AttributeError(name)
