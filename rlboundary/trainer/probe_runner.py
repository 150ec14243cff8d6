"""The probe runner: sample, verify and score a checkpoint's test problems, store per-problem
rows, then run the registered probes against the base model (step 0).

Entry points: :func:`probe_checkpoint` (the hook trainers call at every checkpoint),
:func:`probe_series` (every HF checkpoint in a directory, offline) and the CLI's
``rlboundary probe``. `cfg` is a plain mapping built by the CLI (see ``conf/config.yaml``):
``run_dir, cache_dir, base_path, n, seed, sampling{...}, sampler{...}, probe{chunk, workers,
save_samples, datasets}, probes[...]``. ``probe.datasets`` maps a dataset name to its data
settings (the resolved ``conf/data/<name>.yaml``).

Differences from the study: it sampled with vLLM at T=0.6, top-p 0.95 and scored with each
dataset's rules; we sample with the configured sampler and score with math-verify. Perplexity
is of the *response* tokens given the prompt, under the base model at T=1, as in its Figure 6.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Mapping

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rlboundary.probes import run_probes, transitions
from rlboundary.tasks import TASKS, Task
from rlboundary.tasks.schema import Record, ids_sha256
from rlboundary.trainer import fanout
from rlboundary.trainer.store import ProbeStore, read_metrics, upsert_metrics, write_json

PROBLEM_COLUMNS = ["problem_id", "dataset", "step", "checkpoint", "difficulty", "n", "c",
                   "c_valid", "n_timeout", "n_truncated", "mean_len", "entropy",
                   "nll_base_sum", "n_tokens"]


def load_dataset(name: str, spec: Mapping, cache_dir: str, limit: int | None
                 ) -> tuple[Task, list[Record]]:
    """A dataset's test split, in id order, truncated to `limit` problems."""
    spec = dict(spec)
    task = TASKS.get(spec.pop("name", name))
    records = sorted((r for r in task.load(cache_dir=cache_dir, **spec) if r.split == "test"),
                     key=lambda r: r.id)
    return task, records[:limit] if limit else records


def checkpoint_hash(path: str) -> str:
    """sha256 over a checkpoint's files (names and bytes), ignoring our own build notes."""
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            if name == "build_info.json" or name.endswith(".part"):
                continue
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:16]


def aggregate(samples: pd.DataFrame, records: list[Record], n: int, has_trace: bool
              ) -> pd.DataFrame:
    """Per-sample rows -> one row per problem (CONTRACTS columns, minus step/dataset)."""
    g = samples.groupby("problem_id", sort=False)
    out = pd.DataFrame({
        "n": g.size(), "c": g["correct"].sum(),
        "c_valid": g["valid"].sum() if has_trace else -1,
        "n_timeout": g["timeout"].sum(), "n_truncated": g["finish_reason"].apply(
            lambda s: int((s == "length").sum())),
        "mean_len": g["n_tokens"].mean(),
        "entropy": g["entropy_sum"].sum() / g["n_tokens"].sum().clip(lower=1),
        "nll_base_sum": g["nll_base"].sum(), "n_tokens": g["n_tokens"].sum(),
    })
    diff = {r.id: r.difficulty for r in records}
    out = out.reindex([r.id for r in records]).reset_index(names="problem_id")
    if out["n"].isna().any() or (out["n"] != n).any():
        raise RuntimeError(f"sample counts do not match n={n} for some problems")
    out["difficulty"] = out["problem_id"].map(diff).astype(float)
    return out.astype({"n": int, "c": int, "c_valid": int, "n_timeout": int,
                       "n_truncated": int, "n_tokens": int})


def probe_dataset(store: ProbeStore, model_path: str, cfg: Mapping, task: Task,
                  records: list[Record], meta: Mapping[str, Any]) -> pd.DataFrame:
    """Probe one checkpoint on one dataset, resuming from finished chunks; returns its rows."""
    if store.done():
        return store.load()
    chunk = int(cfg["probe"]["chunk"])
    chunks = [records[i:i + chunk] for i in range(0, len(records), chunk)]
    todo = [i for i in range(len(chunks)) if i not in store.finished_chunks()]
    save = _save_samples(cfg, len(records))
    job = dict(task=task.name, n=int(cfg["n"]), sampling=dict(cfg["sampling"]),
               seed=int(cfg["seed"]), has_trace=task.trace_check is not None)
    bar = tqdm(total=len(chunks), initial=len(chunks) - len(todo), unit="chunk",
               desc=f"probe {meta['dataset']} step {meta['step']}",
               disable=not cfg.get("progress", True), mininterval=2)

    def on_result(i: int, result) -> None:
        problems, samples = result
        for k, v in meta.items():
            problems[k] = v
        store.write_part(i, problems[PROBLEM_COLUMNS], samples if save else None)
        bar.update(1)

    worker_kw = dict(policy_path=model_path, base_path=cfg["base_path"],
                     sampler=dict(cfg["sampler"]))
    fanout.run_chunks(worker_kw, [(i, chunks[i], job) for i in todo],
                      _workers(cfg), on_result)
    bar.close()
    return store.finalize(len(chunks))


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


def base_store(cfg: Mapping, dataset: str, records: list[Record]) -> ProbeStore:
    """Where the base model's own probe lives: shared by every run naming the same base,
    keyed by (model hash, dataset hash, sampling settings)."""
    settings = {"n": cfg["n"], "seed": cfg["seed"], "sampling": dict(cfg["sampling"]),
                "sampler": cfg["sampler"]["name"]}
    data_hash = ids_sha256(records) + hashlib.sha256(
        "\n".join(r.answer for r in records).encode()).hexdigest()
    key = hashlib.sha256(json.dumps([checkpoint_hash(cfg["base_path"]), data_hash, settings],
                                    sort_keys=True).encode()).hexdigest()[:16]
    return ProbeStore(os.path.join(cfg["cache_dir"], "base_probes", key), dataset, 0)


def probe_checkpoint(path: str, step: int, cfg: Mapping) -> dict[str, dict[str, float]]:
    """Probe the checkpoint at `path` as training step `step` on every configured dataset.

    The base model is probed first (step 0, cached across runs); metrics compare against it and
    against the previous step already in the run. Returns {dataset: metrics}.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    run_dir = cfg["run_dir"]
    os.makedirs(run_dir, exist_ok=True)
    results = {}
    for name, spec in cfg["probe"]["datasets"].items():
        task, records = load_dataset(name, spec, cfg["cache_dir"], cfg["probe"].get("limit"))
        base_rows = _probe_base(cfg, name, task, records)
        if step == 0:
            cur = base_rows
        else:
            meta = {"dataset": name, "step": int(step), "checkpoint": os.path.abspath(path)}
            cur = probe_dataset(ProbeStore(run_dir, name, step), path, cfg, task, records, meta)
        results[name] = _metrics(cfg, name, step, cur, base_rows)
    return results


def _probe_base(cfg: Mapping, name: str, task: Task, records: list[Record]) -> pd.DataFrame:
    shared = base_store(cfg, name, records)
    meta = {"dataset": name, "step": 0, "checkpoint": "base"}
    rows = probe_dataset(shared, cfg["base_path"], cfg, task, records, meta)
    local = ProbeStore(cfg["run_dir"], name, 0)
    if not local.done():
        local.copy_from(shared)
    return rows


def _metrics(cfg: Mapping, name: str, step: int, cur: pd.DataFrame, base: pd.DataFrame
             ) -> dict[str, float]:
    probes = list(cfg["probes"])
    metrics = run_probes(probes, cur, None if step == 0 else base)
    if "entropy" in metrics and _entropy_kind(cfg) == "mc":  # vLLM: -logprob of sampled tokens
        metrics["entropy_mc"] = metrics.pop("entropy")
    prev = _previous(cfg["run_dir"], name, step)
    if prev is not None:
        aligned = prev.set_index("problem_id").reindex(cur["problem_id"])
        metrics.update({f"transitions/{k}": float(v) for k, v in transitions(
            aligned["c"].to_numpy(), cur["c"].to_numpy()).items()
            if isinstance(v, (int, float, np.integer, np.floating))})
    row = {"step": int(step), "dataset": name,
           **{k: (None if v != v else float(v)) for k, v in metrics.items()}}
    upsert_metrics(cfg["run_dir"], row)
    return metrics


def _entropy_kind(cfg: Mapping) -> str:
    from rlboundary.trainer.samplers import SAMPLERS

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


def find_checkpoints(series_dir: str) -> list[tuple[int, str]]:
    """HF checkpoints under `series_dir` with their steps, sorted by step.

    A checkpoint is a directory holding config.json and weights (*.safetensors or *.bin); its
    step is the last integer in its path relative to `series_dir` (``global_step_40/actor/
    huggingface``, ``checkpoint-40``, ``step_40`` all give 40).
    """
    found = []
    for root, dirs, files in os.walk(series_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # half-written .tmp_* checkpoints
        if "config.json" in files and any(f.endswith((".safetensors", ".bin")) for f in files):
            rel = os.path.relpath(root, series_dir)
            nums = re.findall(r"\d+", rel)
            if not nums:
                raise ValueError(f"cannot tell the step of checkpoint {root}: no number in "
                                 f"its path relative to {series_dir}")
            found.append((int(nums[-1]), root))
    if not found:
        raise FileNotFoundError(f"no HF checkpoints (config.json + weights) under {series_dir}")
    steps = [s for s, _ in found]
    dup = {s for s in steps if steps.count(s) > 1}
    if dup:
        raise ValueError(f"several checkpoints claim step(s) {sorted(dup)} under {series_dir}")
    return sorted(found)


def probe_series(series_dir: str, cfg: Mapping) -> dict[int, dict[str, dict[str, float]]]:
    """Probe the base model (step 0) and then every checkpoint in `series_dir` in step order."""
    out = {0: probe_checkpoint(cfg["base_path"], 0, cfg)}
    for step, path in find_checkpoints(series_dir):
        if step == 0:
            continue
        out[step] = probe_checkpoint(path, step, cfg)
    write_json(os.path.join(cfg["run_dir"], "series.json"),
               {"series_dir": os.path.abspath(series_dir), "steps": sorted(out),
                "metrics": read_metrics(cfg["run_dir"])})
    return out
