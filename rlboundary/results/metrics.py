"""``RUN_DIR/metrics.jsonl``: one JSON line per (kind, step, dataset), read by the report.

Probe lines carry ``dataset`` and the probe metrics (``pass@k``, ``ppl_base``, ...); training
lines carry ``kind: "train"`` and the trainer's metrics. The trainer and its probe worker both
write, so every update rewrites the file atomically under an exclusive lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

import pandas as pd

from rlboundary.fileio import write_text


@contextlib.contextmanager
def _metrics_lock(run_dir: str):
    """An exclusive lock on RUN_DIR/metrics.jsonl: the trainer and its probe worker both write."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, ".metrics.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _key(row: dict) -> tuple:
    return (row.get("kind", "probe"), row["step"], row.get("dataset") or "")


def upsert_metrics(run_dir: str, row: dict, merge: bool = False) -> None:
    """Replace the line of (kind, step, dataset) in metrics.jsonl, atomically and under a lock;
    with ``merge``, add ``row``'s keys to that line instead (a trainer that logs one step in
    several calls).

    Probe lines carry ``dataset``; training lines carry ``kind: "train"`` and no dataset.
    """
    path = os.path.join(run_dir, "metrics.jsonl")
    with _metrics_lock(run_dir):
        rows = read_metrics(run_dir)
        old = [r for r in rows if _key(r) == _key(row)]
        rows = [r for r in rows if _key(r) != _key(row)]
        rows.append({**old[-1], **row} if merge and old else row)
        rows.sort(key=lambda r: (r.get("kind", "probe"), r.get("dataset") or "", r["step"]))
        write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_metrics(run_dir: str) -> list[dict]:
    """Every line of metrics.jsonl, in file order (strict: the writers' own read-modify-write)."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _tolerant_lines(run_dir: str | Path) -> list[dict]:
    """The JSON lines of metrics.jsonl for readers: a line cut short by a crash mid-write is
    skipped rather than failing the whole report; [] when there is no file."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def load_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The probe lines of RUN_DIR/metrics.jsonl: one row per (step, dataset), later lines win
    (key by key: a later partial line only overrides the keys it carries)."""
    rows = [r for r in _tolerant_lines(run_dir) if r.get("kind", "probe") == "probe"]
    if not rows:
        return pd.DataFrame(columns=["step", "dataset"])
    df = pd.DataFrame(rows).drop(columns=["kind"], errors="ignore")
    if "dataset" not in df.columns:
        df["dataset"] = None
    # groupby.last skips NaN, so a later partial line only overrides the keys it carries.
    return df.groupby(["step", "dataset"], dropna=False, sort=True).last().reset_index()


def load_train_metrics(run_dir: str | Path) -> pd.DataFrame:
    """The training lines of metrics.jsonl, one row per ``global_step`` (later lines win);
    empty when the run was only probed."""
    rows = [r for r in _tolerant_lines(run_dir) if r.get("kind") == "train"]
    if not rows:
        return pd.DataFrame(columns=["step"])
    return pd.DataFrame(rows).groupby("step", sort=True).last().reset_index()
