"""The last stage of a probe: per-problem rows -> the registered probes' metrics, compared with
the base model (step 0) and with the previous stored step, written as one metrics.jsonl line.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

import pandas as pd

from rlboundary.probes import run_probes, transitions_shared
from rlboundary.results.metrics import upsert_metrics
from rlboundary.results.provenance import settings_line
from rlboundary.results.store import ProbeStore


def probe_metrics(cfg: Mapping, name: str, step: int, cur: pd.DataFrame, base: pd.DataFrame,
             prov: Mapping | None = None) -> dict[str, float]:
    """Run the configured probes, add transitions vs the previous stored step (on the
    problems both hold; ``transitions/n_left_out`` counts the others) and the truncation
    share, and upsert the metrics line (with the settings it was probed with)."""
    probes = list(cfg["probes"])
    shared = base
    if step != 0:
        ids = set(base["problem_id"]) & set(cur["problem_id"])
        if len(ids) < len(cur) or len(ids) < len(base):
            cur = cur[cur["problem_id"].isin(ids)].reset_index(drop=True)
        shared = base.set_index("problem_id").reindex(cur["problem_id"]).reset_index()
    metrics = run_probes(probes, cur, None if step == 0 else shared)
    if "entropy" in metrics and _entropy_kind(cfg) == "mc":  # vLLM: -logprob of sampled tokens
        metrics["entropy_mc"] = metrics.pop("entropy")
    if "n_truncated" in cur:
        metrics["truncated_share"] = float(cur["n_truncated"].sum() / max(cur["n"].sum(), 1))
    prev = _previous(cfg["run_dir"], name, step)
    if prev is not None:
        tr = transitions_shared(prev["problem_id"].to_numpy(), prev["c"].to_numpy(),
                                cur["problem_id"].to_numpy(), cur["c"].to_numpy())
        metrics.update({f"transitions/{k}": float(v) for k, v in tr.items()
                        if k != "n_shared"})
    row = {"step": int(step), "dataset": name,
           **{k: (None if math.isnan(v) else float(v)) for k, v in metrics.items()}}
    if prov is not None:
        row["settings"] = settings_line(prov)
    upsert_metrics(cfg["run_dir"], row)
    share = metrics.get("truncated_share", 0.0)
    if share > 0.5:
        print(f"[rlboundary] warning: {share:.0%} of the samples of {name} step {step} hit "
              f"the token limit (sampling.max_new_tokens={cfg['sampling']['max_new_tokens']})",
              flush=True)
    return metrics


def _entropy_kind(cfg: Mapping) -> str:
    from rlboundary.samplers import SAMPLERS

    return getattr(SAMPLERS.get(cfg["sampler"]["name"]), "entropy_kind", "exact")


def _previous(run_dir: str, dataset: str, step: int) -> pd.DataFrame | None:
    """The per-problem rows of the latest stored step before `step`, if any."""
    steps = [s for s in stored_steps(run_dir, dataset) if s < step]
    return ProbeStore(run_dir, dataset, max(steps)).load() if steps else None


def stored_steps(run_dir: str, dataset: str) -> list[int]:
    folder = os.path.join(run_dir, "probes", dataset)
    if not os.path.isdir(folder):
        return []
    return sorted(int(m.group(1)) for f in os.listdir(folder)
                  if (m := re.fullmatch(r"step_(\d+)\.parquet", f)))
