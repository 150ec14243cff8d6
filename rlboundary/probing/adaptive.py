"""The adaptive probe (``probe.adaptive=true``): sample in rounds, stop the problems whose
remaining samples could barely move the pass@k curve.

Round ``r`` draws samples ``r * R .. r * R + R - 1`` (``R = probe.adaptive_round``) of every
problem still sampling; then the stopping rule of probes/adaptive.py (``freeze``) decides, from
all counts so far, which problems stop. Sampling is keyed by problem id (samplers/keyed.py), so
a problem's samples are the first ones the full probe would draw: with ``adaptive_tol=0`` the
probe is the full one, sample for sample. The stored per-problem rows hold ``n`` (samples
drawn) and ``n_target`` (= ``n`` of the config); every pass@k reader turns them into the
predictive estimate (probes/passk.py: per_problem).

Resume: each (round, chunk) is a part of the store (id ``round * ROUND_STRIDE + chunk``) with
its per-sample rows. A resumed probe replays the finished rounds from those rows, so it takes
the same stopping decisions and the same chunks as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from rlboundary.probes import freeze
from rlboundary.probing.rows import PROBLEM_COLUMNS, aggregate

#: Part ids of round r are r * ROUND_STRIDE + chunk.
ROUND_STRIDE = 100_000
#: Per-sample columns the final aggregation needs (kept in the parts even without save_samples).
_KEEP = ["problem_id", "sample", "pred", "finish_reason", "n_tokens", "correct", "timeout",
         "valid", "logprob_sum", "entropy_sum", "nll_base"]


def settings(probe_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """The adaptive settings that shape a result (its provenance), or None when off."""
    if not probe_cfg.get("adaptive"):
        return None
    out = {"round": int(probe_cfg["adaptive_round"]), "tol": float(probe_cfg["adaptive_tol"]),
           "min_samples": int(probe_cfg["adaptive_min_samples"])}
    if out["round"] < 1 or out["tol"] < 0 or out["min_samples"] < 0:
        raise ValueError(f"probe.adaptive_round must be >= 1 and adaptive_tol, "
                         f"adaptive_min_samples >= 0, got {out}")
    return out


def run(store, records: Sequence, job: Mapping[str, Any], adaptive: Mapping[str, Any],
        chunk: int, run_chunks: Callable, meta: Mapping[str, Any], save: bool,
        provenance: Mapping[str, Any], progress: bool = True) -> pd.DataFrame:
    """Probe ``records`` adaptively into ``store``; returns the per-problem rows.

    ``job``: the chunk job of the full probe (its ``n`` is the target N); ``chunk``: the full
    probe's problems per part (a round's part holds ``chunk * N / R`` problems, so parts keep
    the full probe's number of samples and the sampler its batch size); ``run_chunks(jobs,
    on_result)``: fans ``[(part_id, records, job)]`` out (probing/fanout.py); ``save``: also
    keep the samples' texts and tokens. Prints the samples used at the end.
    """
    N, R = int(job["n"]), int(adaptive["round"])
    P = len(records)
    index = {r.id: i for i, r in enumerate(records)}
    m, c = np.zeros(P, np.int64), np.zeros(P, np.int64)
    frozen = np.zeros(P, bool)
    finished, frames = store.finished_chunks(), []
    bar = tqdm(total=P * N, unit="sample", disable=not progress, mininterval=2,
               desc=f"adaptive probe {meta['dataset']} step {meta['step']}")
    for r in range(math.ceil(N / R)):
        first = r * R
        active = [i for i in range(P) if not frozen[i] and m[i] == first]
        if not active:
            break
        size = min(R, N - first)
        per = max(1, chunk * N // size)  # a part holds as many samples as a full probe's chunk
        groups = [[records[i] for i in active[j:j + per]] for j in range(0, len(active), per)]
        got = _round(store, r, groups, dict(job, first=first, n=size), finished,
                     run_chunks, meta, save, bar)
        frames.append(got)
        rows = got["problem_id"].map(index).to_numpy()
        np.add.at(m, rows, 1)
        np.add.at(c, rows, got["correct"].to_numpy(bool).astype(np.int64))
        frozen = freeze(m, c, N, frozen, float(adaptive["tol"]),
                        min_samples=int(adaptive["min_samples"]))
    bar.close()
    return _finish(store, records, frames, m, N, job, meta, save, provenance, progress)


def _round(store, r: int, groups: list, job: Mapping, finished: set, run_chunks: Callable,
           meta: Mapping, save: bool, bar) -> pd.DataFrame:
    """Round ``r``: the per-sample rows of every group of problems, from the stored parts
    where finished, else sampled (and stored); concatenated in group order."""
    parts: dict[int, pd.DataFrame] = {}
    todo = []
    for q, group in enumerate(groups):
        pid = r * ROUND_STRIDE + q
        if pid in finished:
            parts[q] = store.part_samples(pid)
            bar.update(len(parts[q]))
        else:
            todo.append((pid, group, job))

    def on_result(pid: int, result) -> None:
        problems, samples = result
        for k, v in meta.items():
            problems[k] = v
        kept = samples if save else samples[_KEEP]
        store.write_part(pid, problems[PROBLEM_COLUMNS], kept)
        parts[pid % ROUND_STRIDE] = kept
        bar.update(len(samples))

    run_chunks(todo, on_result)
    return pd.concat([parts[q] for q in range(len(groups))], ignore_index=True)


def _finish(store, records, frames, m, N, job, meta, save, provenance, progress):
    samples = pd.concat(frames, ignore_index=True)
    problems = aggregate(samples, list(records), None, job["has_trace"])
    if (problems["n"].to_numpy() != m).any():
        raise RuntimeError("adaptive probe: stored samples disagree with the round counts")
    problems["n_target"] = N
    for k, v in meta.items():
        problems[k] = v
    out = store.finish(problems[PROBLEM_COLUMNS], samples if save else None, provenance)
    if progress:
        used = int(m.sum())
        print(f"[rlboundary] adaptive probe {meta['dataset']} step {meta['step']}: "
              f"{used} of {N * len(records)} samples ({used / max(N * len(records), 1):.0%}); "
              f"{int((m == N).sum())} of {len(records)} problems drew all {N}", flush=True)
    return out
