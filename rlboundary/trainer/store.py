"""Results store: one directory per run, one per-problem parquet per (dataset, checkpoint).

Layout (see README "Results store"):

    RUN_DIR/probes/<dataset>/step_<step:08d>.parquet          per-problem rows (CONTRACTS)
    RUN_DIR/probes/<dataset>/step_<step:08d>.samples.parquet  raw samples, zstd (optional)
    RUN_DIR/probes/<dataset>/step_<step:08d>.parts/           chunks of a probe in progress
    RUN_DIR/metrics.jsonl                                     one line per (step, dataset)

A probe writes each finished chunk of problems as a part (samples first, then the per-problem
file, which marks the chunk done); a killed probe resumes from the parts it finds, and the final
file is a merge of the parts in chunk order, so no row is lost or doubled.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import tempfile

import pandas as pd

from rlboundary.tasks.export import atomic_write


def write_parquet(frame: pd.DataFrame, path: str, compression: str = "zstd") -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False, compression=compression))


class ProbeStore:
    """Files of one (dataset, step) probe under `root`."""

    def __init__(self, root: str, dataset: str, step: int):
        self.dir = os.path.join(root, "probes", dataset)
        stem = os.path.join(self.dir, f"step_{step:08d}")
        self.final = stem + ".parquet"
        self.samples = stem + ".samples.parquet"
        self.parts = stem + ".parts"

    def done(self) -> bool:
        return os.path.exists(self.final)

    def finished_chunks(self) -> set[int]:
        names = glob.glob(os.path.join(self.parts, "part_*.parquet"))
        return {int(m.group(1)) for p in names
                if (m := re.search(r"part_(\d+)\.parquet$", p))}

    def write_part(self, chunk: int, problems: pd.DataFrame, samples: pd.DataFrame | None) -> None:
        os.makedirs(self.parts, exist_ok=True)
        if samples is not None:
            write_parquet(samples, os.path.join(self.parts, f"samples_{chunk:06d}.parquet"))
        write_parquet(problems, os.path.join(self.parts, f"part_{chunk:06d}.parquet"))

    def finalize(self, n_chunks: int) -> pd.DataFrame:
        """Merge parts 0..n_chunks-1 into the final files; the parts go only after."""
        missing = sorted(set(range(n_chunks)) - self.finished_chunks())
        if missing:
            raise RuntimeError(f"{self.parts}: chunks {missing[:10]} are not finished")
        read = lambda kind, i: pd.read_parquet(os.path.join(self.parts, f"{kind}_{i:06d}.parquet"))
        problems = pd.concat([read("part", i) for i in range(n_chunks)], ignore_index=True)
        if os.path.exists(os.path.join(self.parts, "samples_000000.parquet")):
            samples = pd.concat([read("samples", i) for i in range(n_chunks)], ignore_index=True)
            write_parquet(samples, self.samples)
        write_parquet(problems, self.final)
        shutil.rmtree(self.parts, ignore_errors=True)
        return problems

    def load(self) -> pd.DataFrame:
        if not self.done():
            raise FileNotFoundError(f"no probe results at {self.final}")
        return pd.read_parquet(self.final)

    def copy_from(self, other: "ProbeStore") -> None:
        """Copy another store's final files here (the shared base-model cache into a run)."""
        for src, dst in ((other.samples, self.samples), (other.final, self.final)):
            if os.path.exists(src):
                atomic_write(dst, lambda tmp, s=src: shutil.copyfile(s, tmp))


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


def upsert_metrics(run_dir: str, row: dict) -> None:
    """Replace the line of (kind, step, dataset) in metrics.jsonl, atomically and under a lock.

    Probe lines carry ``dataset``; training lines carry ``kind: "train"`` and no dataset.
    """
    path = os.path.join(run_dir, "metrics.jsonl")
    with _metrics_lock(run_dir):
        rows = [r for r in read_metrics(run_dir) if _key(r) != _key(row)]
        rows.append(row)
        rows.sort(key=lambda r: (r.get("kind", "probe"), r.get("dataset") or "", r["step"]))
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        atomic_write(path, lambda tmp: open(tmp, "w").write(text))


def read_metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_json(path: str, obj) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    atomic_write(path, lambda tmp: open(tmp, "w").write(text))


def scratch_dir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)
