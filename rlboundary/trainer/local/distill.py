"""Distillation (``algorithm=distill``): the study's other half, on the local engine.

arXiv 2504.13837 (its Figure 7) found that a model distilled from a stronger teacher's reasoning
traces solves problems its base never solved, where RLVR stays inside the base's boundary. As
distillation data is made in practice (rejection sampling, e.g. DeepSeek-R1's SFT data), the
teacher samples ``distill.samples_per_problem`` responses to every training problem, the
verifier keeps the correct ones (at most ``distill.keep_per_problem`` distinct texts per
problem), and the base is fine-tuned on them with verl's response-only SFT loss
(``verl.workers.utils.losses.sft_loss``: the negative log-likelihood of the response tokens,
summed and divided by the batch's response tokens). Checkpoints, probes, resume and W&B are the
RL runs' own (engine.py); one step is one optimizer update on ``data.train_batch_size`` kept
samples, drawn in a seeded order per epoch.

Where we differ from the study: its teacher (DeepSeek-R1) wrote the traces once for a fixed
dataset (OpenR1-style); ours samples the task's training problems. The kept set is written to
``RUN_DIR/distill_data.parquet`` (atomically, with the teacher and settings it came from), so a
resumed run trains on the same samples.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from rlboundary.errors import UserError
from rlboundary.fileio import atomic_write, write_json
from rlboundary.tasks import Task
from rlboundary.tasks.prompts import render
from rlboundary.tasks.schema import Record
from rlboundary.trainer.local.batch import collate

DATA_FILE = "distill_data.parquet"


def data_settings(cfg: Mapping[str, Any], teacher_path: str) -> dict[str, Any]:
    """What the kept samples depend on: the teacher, the sampling and the training problems."""
    d = cfg["distill"]
    return {"teacher": os.path.abspath(teacher_path), "seed": int(cfg["seed"]),
            "data": {k: v for k, v in cfg["data"].items()
                     if k not in ("train_batch_size", "probe_split")},
            **{k: d[k] for k in ("problems", "samples_per_problem", "keep_per_problem",
                                 "temperature", "top_p", "max_new_tokens")}}


def keep_verified(rows: pd.DataFrame, keep_per_problem: int) -> pd.DataFrame:
    """Rejection sampling: of the teacher's scored samples (``problem_id``, ``sample``,
    ``text``, ``correct``, ``finish_reason``), the correct ones that ended by themselves (a
    response cut at the length limit is not a whole trace), at most ``keep_per_problem``
    distinct texts per problem, in sample order. Returns those rows."""
    ok = rows[rows["correct"].astype(bool) & (rows["finish_reason"] == "stop")]
    ok = ok.sort_values(["problem_id", "sample"], kind="stable")
    ok = ok.drop_duplicates(["problem_id", "text"])
    return ok.groupby("problem_id", sort=False).head(int(keep_per_problem)).reset_index(drop=True)


def teacher_samples(cfg: Mapping[str, Any], teacher_path: str, task: Task,
                    records: list[Record]) -> pd.DataFrame:
    """The kept samples for this run: read from RUN_DIR/distill_data.parquet when made with the
    same settings, else drawn from the teacher now (progress bar), filtered by
    :func:`keep_verified` and written there. Raises ``UserError`` when the teacher solves
    none of the training problems."""
    from rlboundary.samplers import make_sampler
    from rlboundary.samplers.rollout import sample_and_score

    path = os.path.join(cfg["run_dir"], DATA_FILE)
    meta_path = path + ".json"
    want = data_settings(cfg, teacher_path)
    if os.path.exists(path) and os.path.exists(meta_path):
        with open(meta_path) as fh:
            if json.load(fh).get("settings") == json.loads(json.dumps(want)):
                return pd.read_parquet(path)
    d, t0 = cfg["distill"], time.perf_counter()
    if d["problems"] is not None:
        records = records[:int(d["problems"])]
    sampler_kw = {k: v for k, v in cfg["sampler"].items() if k != "name"}
    # nothing trains yet: the teacher samples with every core the run may use
    sampler_kw["torch_threads"] = sampler_kw.get("torch_threads") or int(
        cfg["ray"]["num_cpus"] or os.cpu_count() or 1)
    sampler = make_sampler(cfg["sampler"]["name"], teacher_path, **sampler_kw)
    try:
        rows = sample_and_score(sampler, task, records, n=int(d["samples_per_problem"]),
                                max_new_tokens=int(d["max_new_tokens"]),
                                temperature=float(d["temperature"]), top_p=float(d["top_p"]),
                                seed=int(cfg["seed"]) * 7_919 + 17,
                                progress=bool(cfg.get("progress", True)))
    finally:
        getattr(sampler, "close", lambda: None)()
    kept = keep_verified(rows, int(d["keep_per_problem"]))
    if kept.empty:
        raise UserError(f"distill: the teacher {teacher_path} solved none of the "
                        f"{len(records)} training problems in {d['samples_per_problem']} "
                        "samples each; use a stronger teacher or more samples_per_problem")
    problems = {r.id: r.problem for r in records}
    kept = kept[["problem_id", "sample", "text"]].assign(
        problem=lambda df: df["problem_id"].map(problems))
    atomic_write(path, kept.to_parquet)   # a full disk: one line, nothing half-written
    solved = rows.groupby("problem_id")["correct"].any()
    write_json(meta_path, {"settings": want, "teacher_samples": len(rows),
                           "kept": len(kept), "problems": len(records),
                           "problems_with_a_kept_sample": int(kept["problem_id"].nunique()),
                           "teacher_accuracy": float(rows["correct"].mean()),
                           "teacher_solved_share": float(solved.mean()),
                           "seconds": time.perf_counter() - t0})
    return kept


def encode_samples(tokenizer, template: str, kept: pd.DataFrame) -> list[tuple[list, list]]:
    """(prompt ids, response ids + EOS) per kept sample, in the student's tokens: the prompt
    as every sampler encodes it (BOS rule of ``samplers.tokens.encode_prompts``), the
    teacher's text re-tokenized (teacher and student may tokenize differently)."""
    from rlboundary.samplers.tokens import encode_prompts

    prompts = encode_prompts(tokenizer, [render(template, p) for p in kept["problem"]])
    eos = tokenizer.eos_token_id
    out = []
    for p, text in zip(prompts, kept["text"]):
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        out.append((p, ids + ([eos] if eos is not None else [])))
    return out


def sft_step(ctx, step: int) -> dict[str, float]:
    """One SFT update on the next ``data.train_batch_size`` kept samples (``ctx.data`` orders
    (prompt ids, response ids) pairs); returns verl-namespaced metrics."""
    t0 = time.perf_counter()
    pairs = ctx.data.next(int(ctx.cfg["data"]["train_batch_size"]))
    batch = collate([p for p, _ in pairs], [r for _, r in pairs], ctx.pad_id)
    metrics = ctx.call("update_sft", batch, step)
    lengths = batch["response_mask"].sum(-1)
    metrics.update({"response_length/mean": float(lengths.mean()),
                    "response_length/max": float(lengths.max()),
                    "timing_s/step": time.perf_counter() - t0})
    return metrics
