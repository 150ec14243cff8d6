"""Synthetic run directories for the report and compare tests (on pytest's ``pythonpath``).

A run's policy is sharper than its base (solves easy problems every time, drops hard ones),
which is the situation the report exists to show.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from rlboundary import probes

N_PROBLEMS, N_SAMPLES = 50, 32
DATASETS = ("arith", "math")


def probe_table(rng, dataset: str, step: int, p_base: np.ndarray, *, validity: bool,
                 with_nll: bool = True) -> pd.DataFrame:
    """One checkpoint's per-problem table; sharpness grows with the step."""
    logit = np.log(p_base / (1 - p_base))
    sharp = 1.0 + step / 10.0
    p = 1 / (1 + np.exp(-(sharp * logit + 0.5 * step / 10)))
    c = rng.binomial(N_SAMPLES, p)
    ntok = rng.integers(2000, 4000, size=len(p))
    ppl = rng.gamma(6.0, 0.05 * (1 + step / 40), size=len(p)) + 1.0  # per-response mean
    spread = np.array([0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2])  # its quantiles q0 .. q100
    summ = {k: ppl * f if with_nll else np.nan
            for k, f in zip(probes.summary_keys("ppl_base"), spread)}
    return pd.DataFrame({
        "ppl_base_mean": ppl if with_nll else np.nan,
        "ppl_base_count": N_SAMPLES if with_nll else 0, **summ,
        "problem_id": [f"{dataset}-{i:03d}" for i in range(len(p))],
        "dataset": dataset, "step": step, "checkpoint": "base" if step == 0 else f"step_{step}",
        "difficulty": rng.uniform(1, 5, size=len(p)),
        "n": N_SAMPLES, "c": c,
        "c_valid": rng.binomial(c, 0.85) if validity else -1,
        "n_timeout": 0, "n_truncated": rng.integers(0, 3, size=len(p)),
        "mean_len": ntok / N_SAMPLES,
        "entropy": rng.gamma(4.0, 0.1 / (1 + step / 10), size=len(p)),
        "nll_base_sum": ntok * rng.gamma(6.0, 0.05 * (1 + step / 40), size=len(p))
        if with_nll else np.nan,
        "n_tokens": ntok if with_nll else 0,
    })


def make_run(root: Path, steps=(0, 10, 20), datasets=DATASETS, seed: int = 0,
             with_nll: bool = True) -> Path:
    """Write probes/<dataset>/step_*.parquet and metrics.jsonl; c_valid only on 'arith'."""
    rng = np.random.default_rng(seed)
    lines = []
    for ds in datasets:
        p_base = rng.beta(0.6, 0.9, size=N_PROBLEMS).clip(1e-3, 1 - 1e-3)
        for s in steps:
            df = probe_table(rng, ds, s, p_base, validity=ds == "arith", with_nll=with_nll)
            out = root / "probes" / ds / f"step_{s:08d}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            df.to_parquet(out)
            lines.append({"step": s, "dataset": ds, "pass@1": float((df.c / df.n).mean()),
                          "train/reward": 0.1 * s})
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"step": 30, "datas'  # torn last line
    (root / "metrics.jsonl").write_text(text)
    return root


def wandb_records(path) -> list[bytes]:
    """The records of a .wandb file: W&B's 7-byte header, then LevelDB's log format (32 KiB
    blocks of chunks, each a 7-byte header: crc32 u32, length u16, type 1..4 = full, first,
    middle, last)."""
    import struct

    raw, out, part, pos = path.read_bytes(), [], b"", 7
    while pos + 7 <= len(raw):
        left = 32768 - (pos % 32768)
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        chunk, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        part = chunk if kind in (1, 2) else part + chunk
        if kind in (1, 4):
            out.append(part)
    return out


def wandb_typed(local_dir, kind: str) -> list:
    """The ``kind`` parts (``metric``, ``run``, ...) of an offline run's records, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    out = []
    for path in local_dir.glob("*.wandb"):
        for data in wandb_records(path):
            rec = pb.Record()
            rec.ParseFromString(data)
            if rec.WhichOneof("record_type") == kind:
                out.append(getattr(rec, kind))
    return out


def wandb_summary_rules(local_dir) -> dict[str, str]:
    """{metric name or glob: summary rule}, in order, from an offline run's define_metric
    records."""
    return {m.name or m.glob_name: "none" if m.summary.none else "last" if m.summary.last
            else "" for m in wandb_typed(local_dir, "metric")}


def twin_runs(root: Path) -> tuple[Path, Path]:
    """Two runs probed against one base model: B has A's step-0 tables, its own later steps."""
    a = make_run(root / "sweep" / "a", seed=0)
    b = make_run(root / "sweep" / "b", seed=1)
    for ds in DATASETS:
        base = a / "probes" / ds / "step_00000000.parquet"
        (b / "probes" / ds / base.name).write_bytes(base.read_bytes())
    return a, b


def seed_sweep(root: Path) -> dict[str, Path]:
    """A sweep of 3 GRPO seeds, 2 RLOO seeds and one PPO run, all against one base model."""
    jobs = [("algorithm=grpo", 0), ("algorithm=grpo", 1), ("algorithm=grpo", 2),
            ("algorithm=rloo", 0), ("algorithm=rloo", 1), ("algorithm=ppo", 0)]
    runs = {}
    for i, (algo, seed) in enumerate(jobs):
        name = f"{algo},seed={seed}"
        run = make_run(root / name, seed=10 + i, datasets=("arith",))
        if runs:
            base = next(iter(runs.values())) / "probes" / "arith" / "step_00000000.parquet"
            (run / "probes" / "arith" / base.name).write_bytes(base.read_bytes())
        overrides = ["progress=false", algo] + ([f"seed={seed}"] if algo != "algorithm=ppo"
                                                  else [])  # shared keys do not name groups
        (run / "job.json").write_text(json.dumps({"job": i, "name": name,
                                                  "overrides": overrides}))
        runs[name] = run
    return runs
