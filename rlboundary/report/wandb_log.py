"""Weights & Biases logging of probe results, live during training or replayed afterwards.

Every scalar goes to `probe/<dataset>/<metric>` against its own x-axis `probe/step`, so probe
curves line up with training steps even when the trainer logs many more rows in between (W&B
insists that its internal step only grows). `wandb` is imported lazily: the rest of the
package, and every test that does not log, works without it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import pandas as pd

from rlboundary.report.load import RunData, curves, ledger, load_run, summary

STEP_KEY = "probe/step"
# summary() columns that describe the table rather than measure the model
NON_METRIC = {"step", "dataset", "n_problems", "k_max", "settings"}
# What a run's W&B summary holds per dataset, in this order (the value at the last probe). The
# other probe metrics (pass@k for every k, its bands, acc_hist bins, ...) are kept out of the
# summary, where they would bury these under a hundred keys; their curves are all logged.
HEADLINE = ("pass@1", "pass@{k_max}", "delta_se", "ppl_base", "entropy", "crossover_k",
            "coverage/policy_only", "coverage/base_only")


def import_wandb():
    """wandb, imported on first use (optional at the package's import time)."""
    import wandb

    return wandb


def resolve_mode(mode: str | None = None) -> str | None:
    """Offline when nobody configured W&B: no API key and no WANDB_MODE means no login.

    An explicit `mode` or WANDB_MODE always wins. WANDB_MODE is passed on by value, not left
    to wandb: wandb reads its environment once per process, so a later change of WANDB_MODE
    would be missed. None: an API key is set and wandb picks the mode.
    """
    if mode is not None:
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return None if os.environ.get("WANDB_API_KEY") else "offline"


def is_finite_number(v: Any) -> bool:
    """True for a value that converts to a finite float (W&B and metrics.jsonl keep only those)."""
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


class WandbLogger:
    """Logs per-(step, dataset) probe scalars, pass@k line charts and the ledger table.

    Pass `run=` to log into a run the trainer already opened (it is then not finished here;
    `commit=False` when that trainer logs with explicit steps, as verl does, so ours never
    move W&B's step ahead of it);
    otherwise a run is started with `wandb.init(project=..., **init_kw)`.
    `keys` records every key logged, which is handy for tests and for a final sanity check.
    """

    def __init__(self, project: str = "rlboundary", *, name: str | None = None,
                 config: Mapping[str, Any] | None = None, mode: str | None = None,
                 run: Any = None, commit: bool = True, **init_kw: Any):
        wandb = import_wandb()
        self._owns_run = run is None
        self.commit = commit  # False: ride along with the trainer's next `log(step=...)`
        if run is None:
            run = wandb.init(project=project, name=name, config=dict(config or {}),
                             mode=resolve_mode(mode), **init_kw)
        self.run = run
        self.keys: set[str] = set()
        self.summary_keys: list[str] = []
        run.define_metric(STEP_KEY)
        run.define_metric("probe/*", step_metric=STEP_KEY)

    def _define_summary(self, dataset: str, k_max: int) -> None:
        """Once per dataset: only the HEADLINE metrics go to the run summary."""
        if any(k.startswith(f"probe/{dataset}/") for k in self.summary_keys):
            return
        self.run.define_metric(f"probe/{dataset}/*", step_metric=STEP_KEY, summary="none")
        for name in dict.fromkeys(h.format(k_max=k_max) for h in HEADLINE):
            key = f"probe/{dataset}/{name}"
            self.run.define_metric(key, step_metric=STEP_KEY, summary="last")
            self.summary_keys.append(key)

    @property
    def local_dir(self) -> Path:
        """The run's local directory (holds the offline .wandb file to `wandb sync`)."""
        return Path(self.run.dir).parent

    def _log(self, step: int, payload: dict[str, Any]) -> None:
        self.run.log({STEP_KEY: int(step), **payload}, commit=self.commit)
        self.keys.update(payload)

    def log_metrics(self, step: int, dataset: str, metrics: Mapping[str, Any]) -> dict:
        """Log finite scalars as probe/<dataset>/<metric>; NaN cells (not measured) are dropped."""
        payload = {f"probe/{dataset}/{k}": float(v) for k, v in metrics.items()
                   if k not in NON_METRIC and is_finite_number(v)}
        if is_finite_number(metrics.get("k_max")):
            self._define_summary(dataset, int(metrics["k_max"]))
        if payload:
            self._log(step, payload)
        return payload

    def log_pass_curve(self, step: int, dataset: str, curve: pd.DataFrame,
                       prefix: str = "") -> str:
        """One pass@k line chart for this checkpoint: estimate and its 95% CI bounds.

        `curve` has columns k, pass, lo, hi (as `report.load.curve` returns).
        """
        wandb = import_wandb()
        key = f"probe/{dataset}/{prefix}pass@k_curve/step_{int(step):08d}"
        chart = wandb.plot.line_series(
            xs=[int(k) for k in curve["k"]],
            ys=[list(map(float, curve[c])) for c in ("pass", "lo", "hi")],
            keys=[f"{prefix}pass@k", "95% CI low", "95% CI high"],
            title=f"{dataset} {prefix}pass@k at step {int(step)}", xname="k")
        self._log(step, {key: chart})
        return key

    def log_ledger(self, step: int, dataset: str, table: pd.DataFrame) -> str:
        """The per-problem solvability ledger as a wandb.Table (filterable in the UI)."""
        wandb = import_wandb()
        key = f"probe/{dataset}/ledger"
        df = table.copy()
        for col in df.columns:  # wandb.Table wants plain python / numpy scalar columns
            if df[col].dtype == object:
                df[col] = df[col].astype(str)
        self._log(step, {key: wandb.Table(dataframe=df.reset_index(drop=True))})
        return key

    def log_checkpoint(self, data: RunData, dataset: str, step: int,
                       metrics: Mapping[str, Any] | None = None) -> None:
        """Everything for one probed checkpoint: scalars, pass@k chart(s), its ledger rows.

        Only this checkpoint's ledger rows are logged (with their status vs base): W&B keeps
        one table per logged step, so a cumulative table would grow quadratically.
        """
        if metrics is None:
            s = summary(data, dataset)
            metrics = s[s["step"] == step].iloc[0].to_dict()
        self.log_metrics(step, dataset, metrics)
        self.log_pass_curve(step, dataset, curves(data, dataset)[step])
        if data.has_validity(dataset):
            self.log_pass_curve(step, dataset, curves(data, dataset, valid=True)[step],
                                prefix="valid_")
        led = ledger(data, dataset)
        self.log_ledger(step, dataset, led[led["step"] == step])

    def log_run_step(self, run_dir: str | Path, step: int) -> None:
        """Trainer hook: after the probe tables of `step` are written, log every dataset's."""
        data = load_run(run_dir)
        for ds in data.datasets:
            if step in data.steps(ds):
                self.log_checkpoint(data, ds, step)

    def finish(self) -> None:
        if self._owns_run:
            self.run.finish()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


def log_run_dir(run_dir: str | Path, project: str = "rlboundary", *, name: str | None = None,
                **init_kw: Any) -> WandbLogger:
    """Replay a finished run directory into one W&B run, checkpoint by checkpoint.

    Returns the (finished) logger; `.local_dir` is the run's local folder and `.keys` the
    logged keys. metrics.jsonl rows with no probe table (e.g. trainer-only scalars) are
    logged as they are.
    """
    run_dir = Path(run_dir)
    data = load_run(run_dir)
    name = name or run_dir.name
    summaries = {ds: summary(data, ds) for ds in data.datasets}
    seen = {(int(r.step), ds) for ds, s in summaries.items() for r in s.itertuples()}
    rows = [(int(r["step"]), ds, r) for ds, s in summaries.items()
            for _, r in s.iterrows()]
    extra = [(int(r["step"]), str(r["dataset"]), r) for _, r in data.metrics.iterrows()
             if pd.notna(r["dataset"]) and (int(r["step"]), str(r["dataset"])) not in seen]
    with WandbLogger(project, name=name, config={"run_dir": str(run_dir)}, **init_kw) as lg:
        for step, ds, row in sorted(rows + extra, key=lambda t: (t[0], t[1])):
            if (step, ds) in seen:
                lg.log_checkpoint(data, ds, step, row.to_dict())
            else:
                lg.log_metrics(step, ds, row.to_dict())
    return lg
