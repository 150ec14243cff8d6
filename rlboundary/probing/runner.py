"""The probe runner: sample, verify and score a checkpoint's test problems, store per-problem
rows, then run the registered probes against the base model (step 0).

With ``probe.adaptive=true`` each dataset is sampled in rounds and problems stop early
(probing/adaptive.py, probes/adaptive.py).

The pipeline, one stage per module, each handing finished data to the next: inputs (the
held-out problems, inputs.py) -> plan (reuse a stored result of the same provenance, plan.py)
-> sample, verify and score chunks (fanout.py, post_worker.py, rows.py) -> the passive results
store (results/store.py: write a finished part, merge the parts) -> metrics (metrics.py).

Entry points: :func:`probe_checkpoint` (the hook trainers call at every checkpoint),
:func:`probe_series` (every HF checkpoint in a directory, offline) and the CLI's
``rlboundary probe``. `cfg` is a plain mapping built by the CLI (see ``conf/config.yaml``):
``run_dir, cache_dir, base_path, n, seed, sampling{...}, sampler{...}, probe{chunk, workers,
save_samples, datasets}, probes[...]``. ``probe.datasets`` maps a dataset name to its data
settings (the resolved ``conf/data/<name>.yaml``).

Provenance: every stored result records what produced it (probing/provenance.py); a stored
result is reused only when all of it matches, else ``plan.ProvenanceMismatch`` (a one-line user
error naming the difference; ``force=true`` replaces the result instead). Reused results say
"cached".

Differences from the study: it sampled with vLLM at T=0.6, top-p 0.95 and scored with each
dataset's rules; we sample with the configured sampler and score with math-verify. Perplexity
is of the *response* tokens given the prompt, under the base model at T=1, per response as in
its Figure 6 (``ppl_base``: the mean of per-response values; the token-pooled value is
``ppl_base_pooled``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from rlboundary.errors import MissingPath
from rlboundary.fileio import write_json
from rlboundary.probing import adaptive as adaptive_probe
from rlboundary.probing import fanout
from rlboundary.probing.inputs import check_prompts, find_checkpoints, load_dataset
from rlboundary.probing.metrics import probe_metrics
from rlboundary.probing.plan import base_store, reuse_or_clear
from rlboundary.probing.provenance import chat_template, provenance
from rlboundary.probing.rows import PROBLEM_COLUMNS
from rlboundary.results.metrics import read_metrics
from rlboundary.results.store import ProbeStore
from rlboundary.tasks import Task
from rlboundary.tasks.schema import Record


def probe_dataset(store: ProbeStore, model_path: str, cfg: Mapping, task: Task,
                  records: list[Record], meta: Mapping[str, Any],
                  prov: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Probe one checkpoint on one dataset, resuming from finished chunks; returns its rows.

    A finished result of the same provenance is reused (console: "cached"); one of other
    settings raises ProvenanceMismatch, or is replaced under ``force=true``.
    """
    prov = prov if prov is not None else provenance(cfg, model_path, records, task)
    what = f"{meta['dataset']} step {meta['step']}"
    if reuse_or_clear(store, prov, cfg, what):
        rows = store.load()
        if cfg.get("progress", True) or cfg.get("verbose"):
            print(f"[rlboundary] probe {what}: cached ({store.final})", flush=True)
        return rows
    store.start(prov)
    chunk = int(cfg["probe"]["chunk"])
    chunks = [records[i:i + chunk] for i in range(0, len(records), chunk)]
    todo = [i for i in range(len(chunks)) if i not in store.finished_chunks()]
    save = _save_samples(cfg, len(records))
    job = dict(task=task.name, n=int(cfg["n"]), sampling=dict(cfg["sampling"]),
               seed=int(cfg["probe"]["seed"]), has_trace=task.trace_check is not None,
               chat_template=chat_template(cfg))
    worker_kw = dict(policy_path=model_path, base_path=cfg["base_path"],
                     sampler=dict(cfg["sampler"]), post=cfg["probe"].get("post", "auto"))
    adaptive = adaptive_probe.settings(cfg["probe"])
    if adaptive:
        with fanout.reuse_workers():
            return adaptive_probe.run(
                store, records, job, adaptive, chunk,
                lambda jobs, cb: fanout.run_chunks(worker_kw, jobs, _workers(cfg), cb), meta,
                save, prov, progress=cfg.get("progress", True))
    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), unit="chunk",
               desc=f"probe {meta['dataset']} step {meta['step']}",
               disable=not cfg.get("progress", True), mininterval=2)

    def on_result(i: int, result) -> None:
        problems, samples = result
        for k, v in meta.items():
            problems[k] = v
        store.write_part(i, problems[PROBLEM_COLUMNS], samples if save else None)
        bar.update(1)

    fanout.run_chunks(worker_kw, [(i, chunks[i], job) for i in todo],
                      _workers(cfg), on_result)
    bar.close()
    return store.finalize(len(chunks), provenance=prov)


def _save_samples(cfg: Mapping, n_problems: int) -> bool:
    flag = cfg["probe"]["save_samples"]
    if flag == "auto":
        return n_problems * int(cfg["n"]) <= 1_000_000
    return bool(flag)


def _workers(cfg: Mapping) -> int:
    w = cfg["probe"]["workers"]
    if w == "auto":
        import torch

        return max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    return int(w)


def probe_checkpoint(path: str, step: int, cfg: Mapping) -> dict[str, dict[str, float]]:
    """Probe the checkpoint at `path` as training step `step` on every configured dataset.

    The base model is probed first (step 0, cached across runs); metrics compare against it and
    against the previous step already in the run. Returns {dataset: metrics}. Raises
    FileNotFoundError (a UserError there) for a missing checkpoint, ProvenanceMismatch when
    the run already holds this step probed with other settings (unless ``force``).
    """
    if not os.path.isdir(path):
        raise MissingPath(f"checkpoint not found: {path}")
    run_dir = cfg["run_dir"]
    os.makedirs(run_dir, exist_ok=True)
    results = {}
    for name, spec in cfg["probe"]["datasets"].items():
        task, records = load_dataset(name, spec, cfg["cache_dir"], cfg["probe"].get("limit"))
        check_prompts(cfg, name, task, records)
        base_rows = _probe_base(cfg, name, task, records)
        if step == 0:
            cur = base_rows
        else:
            meta = {"dataset": name, "step": int(step), "checkpoint": os.path.abspath(path)}
            cur = probe_dataset(ProbeStore(run_dir, name, step), path, cfg, task, records, meta)
        prov = ProbeStore(run_dir, name, step).provenance()
        results[name] = probe_metrics(cfg, name, step, cur, base_rows, prov)
    return results


def _probe_base(cfg: Mapping, name: str, task: Task, records: list[Record]) -> pd.DataFrame:
    """The base model's rows (step 0): the run's own copy when it matches the settings, else
    the shared cache's (probed there when missing), copied into the run. ``cfg["base_sampling"]``
    (set only by the temperature control) samples the base otherwise than the checkpoint."""
    cfg = {**cfg, "sampling": cfg.get("base_sampling") or cfg["sampling"]}
    prov = provenance(cfg, cfg["base_path"], records, task)
    local = ProbeStore(cfg["run_dir"], name, 0)
    if reuse_or_clear(local, prov, cfg, f"{name} step 0 (the base model)"):
        if cfg.get("progress", True):
            print(f"[rlboundary] probe {name} step 0: cached ({local.final})", flush=True)
        return local.load()
    shared = base_store(cfg, name, records, prov)
    meta = {"dataset": name, "step": 0, "checkpoint": "base"}
    rows = probe_dataset(shared, cfg["base_path"], cfg, task, records, meta, prov)
    local.copy_from(shared)
    return rows


def probe_series(series: str | list[tuple[int, str]],
                 cfg: Mapping) -> dict[int, dict[str, dict[str, float]]]:
    """Probe the base model (step 0) and then every checkpoint of ``series`` in step order:
    a directory (its HF checkpoints, :func:`find_checkpoints`) or ``[(step, local folder)]``
    (e.g. hub revisions the CLI resolved). Writes RUN_DIR/series.json."""
    found = find_checkpoints(series) if isinstance(series, str) else sorted(series)
    out = {0: probe_checkpoint(cfg["base_path"], 0, cfg)}
    for step, path in found:
        if step == 0:
            continue
        out[step] = probe_checkpoint(path, step, cfg)
    where = ({"series_dir": os.path.abspath(series)} if isinstance(series, str)
             else {"checkpoints": {str(step): path for step, path in found}})
    write_json(os.path.join(cfg["run_dir"], "series.json"),
               {**where, "steps": sorted(out), "metrics": read_metrics(cfg["run_dir"])})
    return out
