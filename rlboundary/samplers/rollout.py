"""The first half of every measurement: prompts -> sampler -> verifier -> per-sample rows.

Training rollouts and probes share this path, so a checkpoint's probe numbers and the rewards it
was trained on come from the same sampler and the same verifier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rlboundary.tasks import Task
from rlboundary.tasks.prompts import render
from rlboundary.tasks.schema import Record
from rlboundary.tasks.verify import Verdict, extract_prediction, verify


def score_samples(task: Task, records: list[Record], batch, n: int, first: int = 0
                  ) -> pd.DataFrame:
    """One row per sample, (P * n) rows, prompt-major like the SampleBatch; ``sample`` is the
    sample's index within its problem, counting from ``first``."""
    rows, verdicts = [], {}
    for s, text in enumerate(batch.texts):
        rec = records[s // n]
        pred = extract_prediction(text, rec.answer)  # as compute_score, the training reward
        key = (pred, rec.answer)
        if key not in verdicts:  # n samples of a problem share few answers: verify each once
            verdicts[key] = verify(pred, rec.answer)
        verdict = verdicts[key]
        valid = task.trace_check(rec.problem, text) if task.trace_check else None
        rows.append({
            "problem_id": rec.id, "sample": first + s % n, "text": text, "pred": pred or "",
            "finish_reason": batch.finish_reasons[s], "n_tokens": len(batch.token_ids[s]),
            "correct": verdict is Verdict.CORRECT, "timeout": verdict is Verdict.TIMEOUT,
            "valid": bool(valid) if valid is not None else None,
            "logprob_sum": float(np.sum(batch.logprobs[s])),
            "entropy_sum": float(np.sum(batch.entropies[s])),
            "token_ids": np.asarray(batch.token_ids[s], dtype=np.int32),
        })
    return pd.DataFrame(rows)


def sample_and_score(sampler, task: Task, records: list[Record], *, n: int,
                     max_new_tokens: int, temperature: float, top_p: float, seed: int,
                     chunk: int = 8, progress: bool = True) -> pd.DataFrame:
    """Sample n completions per record in chunks of `chunk` prompts and score each one.

    Chunk i is sampled with seed + i, so a chunk's samples do not depend on which other chunks
    ran in this process (a resumed probe reproduces an uninterrupted one).
    """
    frames = []
    bar = tqdm(range(0, len(records), chunk), desc=f"sample {n}/problem", disable=not progress,
               unit="chunk", mininterval=2)
    for i in bar:
        part = records[i:i + chunk]
        prompts = [render(task.template, r.problem) for r in part]
        batch = sampler.sample(prompts, n, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, seed=seed + i // chunk)
        frames.append(score_samples(task, part, batch, n))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def accuracy_by_difficulty(samples: pd.DataFrame, records: list[Record]) -> pd.DataFrame:
    """Mean accuracy (and trace validity where defined) by difficulty, plus an 'all' row."""
    df = samples.copy()
    df["difficulty"] = df["problem_id"].map({r.id: r.difficulty for r in records})
    per_problem = df.groupby("problem_id").agg(
        difficulty=("difficulty", "first"), acc=("correct", "mean"),
        valid=("valid", lambda v: np.nan if v.isna().all() else v.astype(float).mean()))
    table = per_problem.groupby("difficulty").agg(problems=("acc", "size"),
                                                  accuracy=("acc", "mean"),
                                                  trace_valid=("valid", "mean")).reset_index()
    total = pd.DataFrame([{"difficulty": "all", "problems": len(per_problem),
                           "accuracy": per_problem["acc"].mean(),
                           "trace_valid": per_problem["valid"].mean()}])
    table["difficulty"] = table["difficulty"].map(lambda d: str(int(d)) if not pd.isna(d) else "?")
    return pd.concat([table, total], ignore_index=True)
