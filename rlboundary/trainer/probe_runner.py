"""The probe runner: sample, verify and score a checkpoint's test problems, store per-problem
rows, then run the registered probes against the base model (step 0).

With ``probe.adaptive=true`` each dataset is sampled in rounds and problems stop early
(trainer/adaptive_probe.py, probes/adaptive.py).

Entry points: :func:`probe_checkpoint` (the hook trainers call at every checkpoint),
:func:`probe_series` (every HF checkpoint in a directory, offline) and the CLI's
``rlboundary probe``. `cfg` is a plain mapping built by the CLI (see ``conf/config.yaml``):
``run_dir, cache_dir, base_path, n, seed, sampling{...}, sampler{...}, probe{chunk, workers,
save_samples, datasets}, probes[...]``. ``probe.datasets`` maps a dataset name to its data
settings (the resolved ``conf/data/<name>.yaml``).

Provenance: every stored result records what produced it (:func:`provenance`); a stored result
is reused only when all of it matches, else :class:`ProvenanceMismatch` (a one-line user error
naming the difference; ``force=true`` replaces the result instead). Reused results say "cached".

Differences from the study: it sampled with vLLM at T=0.6, top-p 0.95 and scored with each
dataset's rules; we sample with the configured sampler and score with math-verify. Perplexity
is of the *response* tokens given the prompt, under the base model at T=1, per response as in
its Figure 6 (``ppl_base``: the mean of per-response values; the token-pooled value is
``ppl_base_pooled``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Mapping

import pandas as pd
from tqdm.auto import tqdm

from rlboundary.errors import UserError
from rlboundary.probes import run_probes, transitions_shared
from rlboundary.tasks import TASKS, Task
from rlboundary.tasks.schema import Record
from rlboundary.trainer import adaptive_probe, fanout
from rlboundary.trainer.provenance import (FORMAT, checkpoint_hash, data_hash,  # noqa: F401
                                           differences, provenance, settings_line,
                                           verifier_version)
from rlboundary.trainer.probe_rows import PROBLEM_COLUMNS, aggregate  # noqa: F401 (public)
from rlboundary.trainer.store import (ProbeStore, read_metrics, upsert_metrics,
                                      write_json)


class ProvenanceMismatch(UserError):
    """A stored result was produced with other settings than the ones asked for now."""


def load_dataset(name: str, spec: Mapping, cache_dir: str, limit: int | None
                 ) -> tuple[Task, list[Record]]:
    """A dataset's held-out split (``spec["probe_split"]`` where the dataset has several, else
    test), in id order, truncated to `limit` problems."""
    spec = dict(spec)
    task = TASKS.get(spec.pop("name", name))
    split = spec.pop("probe_split", "test")
    records = sorted((r for r in task.load(cache_dir=cache_dir, **spec) if r.split == split),
                     key=lambda r: r.id)
    if not records:
        raise ValueError(f"{name}: no {split!r} problems to probe (data.probe_split)")
    return task, records[:limit] if limit else records


def _reuse_or_clear(store: ProbeStore, prov: Mapping, cfg: Mapping, what: str) -> bool:
    """True when ``store`` holds a finished result of exactly ``prov`` (reuse it). A result of
    other settings is removed under ``force=true`` (False: redo), else ProvenanceMismatch."""
    stored = store.provenance()
    if stored is None and not store.done() and not os.path.isdir(store.parts):
        return False
    diff = differences(stored, prov)
    if not diff:
        return store.done()
    if cfg.get("force") or (not store.done() and stored is None):  # stale parts: redo
        store.clear()
        return False
    raise ProvenanceMismatch(
        f"{store.final if store.done() else store.parts}: {what} was probed with other "
        f"settings: {'; '.join(diff[:4])}{' ...' if len(diff) > 4 else ''}. Use another "
        f"run_dir, or force=true to replace it")


def probe_dataset(store: ProbeStore, model_path: str, cfg: Mapping, task: Task,
                  records: list[Record], meta: Mapping[str, Any],
                  prov: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Probe one checkpoint on one dataset, resuming from finished chunks; returns its rows.

    A finished result of the same provenance is reused (console: "cached"); one of other
    settings raises ProvenanceMismatch, or is replaced under ``force=true``.
    """
    prov = prov if prov is not None else provenance(cfg, model_path, records, task)
    what = f"{meta['dataset']} step {meta['step']}"
    if _reuse_or_clear(store, prov, cfg, what):
        rows = store.load()
        if cfg.get("progress", True) or cfg.get("verbose"):
            print(f"[rlboundary] probe {what}: cached ({store.final})", flush=True)
        return rows
    if not os.path.exists(os.path.join(store.parts, "provenance.json")):
        store.start(prov)
    chunk = int(cfg["probe"]["chunk"])
    chunks = [records[i:i + chunk] for i in range(0, len(records), chunk)]
    todo = [i for i in range(len(chunks)) if i not in store.finished_chunks()]
    save = _save_samples(cfg, len(records))
    job = dict(task=task.name, n=int(cfg["n"]), sampling=dict(cfg["sampling"]),
               seed=int(cfg["probe"]["seed"]), has_trace=task.trace_check is not None)
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


def base_store(cfg: Mapping, dataset: str, records: list[Record],
               prov: Mapping[str, Any] | None = None) -> ProbeStore:
    """Where the base model's own probe lives: shared by every run naming the same base,
    keyed by its whole provenance (model, problems, n, sampling, sampler, seed, verifier)."""
    if prov is None:
        prov = provenance(cfg, cfg["base_path"], records, TASKS.get(
            cfg["probe"]["datasets"][dataset].get("name", dataset)))
    keyed = {k: v for k, v in prov.items() if k != "checkpoint"}
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()
                         ).hexdigest()[:16]
    return ProbeStore(os.path.join(cfg["cache_dir"], "base_probes", key), dataset, 0)


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
        results[name] = _metrics(cfg, name, step, cur, base_rows, prov)
    return results


class MissingPath(UserError, FileNotFoundError):
    """A path the user named does not exist."""


def check_prompts(cfg: Mapping, name: str, task: Task, records: list[Record],
                  max_unknown: float = 0.05) -> None:
    """Refuse, before sampling, a model whose tokenizer cannot encode the prompts: more than
    ``max_unknown`` of some prompt's tokens are the unknown token (or the tokenizer drops more
    than that share of its characters). Raises UserError naming dataset and model."""
    from transformers import AutoTokenizer

    from rlboundary.tasks.prompts import render

    tok = AutoTokenizer.from_pretrained(cfg["base_path"])
    unk = tok.unk_token_id
    worst, worst_id = 0.0, None
    for r in records:
        text = render(task.template, r.problem)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        share = (sum(i == unk for i in ids) / len(ids)) if unk is not None else 0.0
        if share > worst:
            worst, worst_id = share, r.id
    if worst > max_unknown:
        raise UserError(
            f"the tokenizer of {cfg['base_path']} maps {worst:.0%} of the tokens of {name} "
            f"problem {worst_id!r} to its unknown token (limit {max_unknown:.0%}): this model "
            f"cannot read {name}'s prompts; probe it on a dataset it was built for")


def _probe_base(cfg: Mapping, name: str, task: Task, records: list[Record]) -> pd.DataFrame:
    """The base model's rows (step 0): the run's own copy when it matches the settings, else
    the shared cache's (probed there when missing), copied into the run."""
    prov = provenance(cfg, cfg["base_path"], records, task)
    local = ProbeStore(cfg["run_dir"], name, 0)
    if _reuse_or_clear(local, prov, cfg, f"{name} step 0 (the base model)"):
        if cfg.get("progress", True):
            print(f"[rlboundary] probe {name} step 0: cached ({local.final})", flush=True)
        return local.load()
    shared = base_store(cfg, name, records, prov)
    meta = {"dataset": name, "step": 0, "checkpoint": "base"}
    rows = probe_dataset(shared, cfg["base_path"], cfg, task, records, meta, prov)
    local.copy_from(shared)
    return rows


def _metrics(cfg: Mapping, name: str, step: int, cur: pd.DataFrame, base: pd.DataFrame,
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
           **{k: (None if v != v else float(v)) for k, v in metrics.items()}}
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
