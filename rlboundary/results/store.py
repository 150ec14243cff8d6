"""Results store: one directory per run, one per-problem parquet per (dataset, checkpoint).

Layout (see README "Results store"):

    RUN_DIR/probes/<dataset>/step_<step:08d>.parquet          per-problem rows (CONTRACTS)
    RUN_DIR/probes/<dataset>/step_<step:08d>.samples.parquet  raw samples, zstd (optional)
    RUN_DIR/probes/<dataset>/step_<step:08d>.parts/           chunks of a probe in progress
    RUN_DIR/metrics.jsonl                                     one line per (kind, step, dataset):
                                                              results/metrics.py

A probe writes each finished chunk of problems as a part (samples first, then the per-problem
file, which marks the chunk done); a killed probe resumes from the parts it finds, and the final
file is a merge of the parts in chunk order, so no row is lost or doubled.

Two guarantees at this boundary:

- **Valid rows.** Every per-problem row read or written has whole, finite ``n >= 1`` and
  ``0 <= c <= n`` (:func:`check_rows`); a bad row raises :class:`BadRows` naming its problem id,
  dataset, step and file, before any metric is computed from it.
- **Provenance.** Every per-problem file (final and parts) carries in its parquet metadata what
  produced it (model and dataset hashes, n, sampling, sampler, seed, verifier version; see
  ``provenance.provenance``). :func:`read_provenance` returns it; the runner reuses a stored
  result only when it matches the current settings exactly.

Files are written atomically with the user's umask (:mod:`rlboundary.fileio`).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from rlboundary.errors import UserError
from rlboundary.fileio import atomic_write, write_text

#: Key of our provenance record in a parquet file's schema metadata.
META_KEY = b"rlboundary.provenance"


class BadRows(UserError, ValueError):
    """A per-problem table holds a row no metric can use; the message names the row and file."""


class DamagedResult(UserError):
    """A stored parquet file cannot be read (cut short, overwritten): names it (``path``) and
    what its footer or schema gave (``why``)."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path} is damaged ({why}): delete it and probe that step again")
        self.path, self.why = path, why


def _schema(path: str):
    """The parquet file's schema (read from its footer); :class:`DamagedResult` when it cannot
    be read, FileNotFoundError when there is no file."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001  (pyarrow raises several types for a bad file)
        raise DamagedResult(path, " ".join(str(e).split())[:160] or type(e).__name__) from None


def read_parquet(path: str) -> pd.DataFrame:
    """``pd.read_parquet``; a file whose footer or schema cannot be read raises
    :class:`DamagedResult` naming it (checked only when the read fails)."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception:
        _schema(path)  # a damaged file raises DamagedResult here; else the error stands
        raise


def check_rows(frame: pd.DataFrame, where: str, dataset: str | None = None,
               step: int | None = None) -> pd.DataFrame:
    """Validate the sample counts of a per-problem table; returns it with int64 ``n`` and ``c``.

    Every row needs whole, finite ``n >= 1`` and ``0 <= c <= n`` (``c_valid``, when present and
    not the "no trace check" value -1, likewise). The first bad row raises :class:`BadRows`:
    ``"<where>: dataset arithmetic step 0 problem 'p1': c=0.5 is not a whole number (need whole
    n >= 1 and 0 <= c <= n)"``. ``where`` is the file (or other source) the rows came from;
    ``dataset`` and ``step`` are taken from the table's columns when not given.
    """
    missing = [c for c in ("problem_id", "n", "c") if c not in frame.columns]
    if missing:
        raise BadRows(f"{where}: per-problem table lacks column(s) {missing}")
    if len(frame) == 0:
        return frame

    def _ctx(i: int) -> str:
        ds = dataset if dataset is not None else (
            frame["dataset"].iloc[i] if "dataset" in frame.columns else "?")
        st = step if step is not None else (
            frame["step"].iloc[i] if "step" in frame.columns else "?")
        return f"{where}: dataset {ds} step {st} problem {frame['problem_id'].iloc[i]!r}"

    def _whole(col: str) -> np.ndarray:
        raw = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BadRows(f"{_ctx(i)}: {col}={frame[col].iloc[i]} is not a whole number "
                          f"(need whole n >= 1 and 0 <= c <= n)")
        return raw.astype(np.int64)

    n, c = _whole("n"), _whole("c")
    for name, vals, bad in (("n", n, n < 1), ("c", c, (c < 0) | (c > n))):
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BadRows(f"{_ctx(i)}: {name}={int(vals[i])} with n={int(n[i])} "
                          f"(need n >= 1 and 0 <= c <= n)")
    if "c_valid" in frame.columns:
        cv = _whole("c_valid")
        bad = (cv < -1) | (cv > n)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BadRows(f"{_ctx(i)}: c_valid={int(cv[i])} with n={int(n[i])} "
                          f"(need -1 for no trace check, else 0 <= c_valid <= n)")
    out = frame.copy()
    out["n"], out["c"] = n, c
    return out


def write_parquet(frame: pd.DataFrame, path: str, compression: str = "zstd",
                  provenance: Mapping[str, Any] | None = None) -> None:
    """Write ``frame`` atomically; ``provenance`` (JSON-able) goes into the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if provenance is not None:
        meta = dict(table.schema.metadata or {})
        meta[META_KEY] = json.dumps(provenance, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression=compression))


def read_provenance(path: str) -> dict | None:
    """The provenance a per-problem file was written with; None for files written before
    provenance was recorded (or by other tools)."""

    meta = _schema(path).metadata or {}
    raw = meta.get(META_KEY)
    return json.loads(raw) if raw else None


def read_rows(path: str, dataset: str | None = None, step: int | None = None) -> pd.DataFrame:
    """Read a per-problem parquet file and validate it (:func:`check_rows`)."""
    return check_rows(read_parquet(path), path, dataset, step)


class ProbeStore:
    """Files of one (dataset, step) probe under `root`."""

    def __init__(self, root: str, dataset: str, step: int):
        self.dataset, self.step = dataset, int(step)
        self.dir = os.path.join(root, "probes", dataset)
        stem = os.path.join(self.dir, f"step_{step:08d}")
        self.final = stem + ".parquet"
        self.samples = stem + ".samples.parquet"
        self.parts = stem + ".parts"

    def done(self) -> bool:
        return os.path.exists(self.final)

    def provenance(self) -> dict | None:
        """What produced the stored result: the final file's, else the parts' (None if none)."""
        if self.done():
            return read_provenance(self.final)
        path = os.path.join(self.parts, "provenance.json")
        if os.path.exists(path):
            with open(path) as fh:
                return json.load(fh)
        return None

    def has_parts(self) -> bool:
        """A probe of this step was started (and not finished) here."""
        return os.path.isdir(self.parts)

    def start(self, provenance: Mapping[str, Any]) -> None:
        """Record what the parts about to be written are produced with, once, before the first
        (a resumed probe keeps the record it started with)."""
        path = os.path.join(self.parts, "provenance.json")
        if os.path.exists(path):
            return
        os.makedirs(self.parts, exist_ok=True)
        write_text(path, json.dumps(provenance, sort_keys=True, indent=1, default=str))

    def clear(self) -> None:
        """Remove this step's results (final, samples and parts): ``force=true``."""
        for f in (self.final, self.samples):
            if os.path.exists(f):
                os.unlink(f)
        shutil.rmtree(self.parts, ignore_errors=True)

    def finished_chunks(self) -> set[int]:
        names = glob.glob(os.path.join(self.parts, "part_*.parquet"))
        return {int(m.group(1)) for p in names
                if (m := re.search(r"part_(\d+)\.parquet$", p))}

    def write_part(self, chunk: int, problems: pd.DataFrame, samples: pd.DataFrame | None
                   ) -> None:
        part = os.path.join(self.parts, f"part_{chunk:06d}.parquet")
        problems = check_rows(problems, part, self.dataset, self.step)
        os.makedirs(self.parts, exist_ok=True)
        if samples is not None:
            write_parquet(samples, os.path.join(self.parts, f"samples_{chunk:06d}.parquet"))
        write_parquet(problems, part)

    def finalize(self, n_chunks: int, provenance: Mapping[str, Any] | None = None
                 ) -> pd.DataFrame:
        """Merge parts 0..n_chunks-1 into the final files; the parts go only after."""
        missing = sorted(set(range(n_chunks)) - self.finished_chunks())
        if missing:
            raise RuntimeError(f"{self.parts}: chunks {missing[:10]} are not finished")
        path = lambda kind, i: os.path.join(self.parts, f"{kind}_{i:06d}.parquet")
        problems = pd.concat([read_rows(path("part", i), self.dataset, self.step)
                              for i in range(n_chunks)], ignore_index=True)
        samples = None
        if os.path.exists(path("samples", 0)):
            samples = pd.concat([self.part_samples(i) for i in range(n_chunks)],
                                ignore_index=True)
        return self.finish(problems, samples, provenance)

    def part_samples(self, chunk: int) -> pd.DataFrame:
        """The per-sample rows stored with part ``chunk`` (FileNotFoundError when absent)."""
        return pd.read_parquet(os.path.join(self.parts, f"samples_{chunk:06d}.parquet"))

    def finish(self, problems: pd.DataFrame, samples: pd.DataFrame | None,
               provenance: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Write the final files (samples first, the per-problem file last: its presence
        means done), then remove the parts; returns ``problems`` validated."""
        problems = check_rows(problems, self.final, self.dataset, self.step)
        if samples is not None:
            write_parquet(samples, self.samples)
        write_parquet(problems, self.final, provenance=provenance)
        shutil.rmtree(self.parts, ignore_errors=True)
        return problems

    def load(self) -> pd.DataFrame:
        """The stored per-problem rows, validated; FileNotFoundError when not probed yet."""
        if not self.done():
            raise FileNotFoundError(f"no probe results at {self.final}")
        return read_rows(self.final, self.dataset, self.step)

    def copy_from(self, other: ProbeStore) -> None:
        """Copy another store's final files here (the shared base-model cache into a run)."""
        for src, dst in ((other.samples, self.samples), (other.final, self.final)):
            if os.path.exists(src):
                atomic_write(dst, lambda tmp, s=src: shutil.copyfile(s, tmp))
