"""``RUN_DIR/probe_failures.jsonl``: probes that failed while training went on, one JSON line
each (step, checkpoint, time, error, traceback), written by both engines; ``rlboundary probe
series=RUN_DIR/checkpoints`` redoes them.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

from rlboundary.fileio import write_text

FAILURES = "probe_failures.jsonl"


def record_failure(run_dir: str, step: int, checkpoint_dir: str, error: BaseException,
                   redo: str | None = None) -> dict:
    """Append the failure of probing ``step`` to RUN_DIR/probe_failures.jsonl (rewritten
    atomically) and print it; ``redo``: the command that probes it again (default: the
    checkpoint folder's series). Returns the record."""
    path = os.path.join(run_dir, FAILURES)
    old = Path(path).read_text() if os.path.exists(path) else ""
    rec = {"step": int(step), "checkpoint": checkpoint_dir, "time": time.time(),
           "error": f"{type(error).__name__}: {error}",
           "traceback": "".join(traceback.format_exception(error))[-4000:],
           "redo": redo or f"rlboundary probe series={os.path.dirname(checkpoint_dir)}"}
    write_text(path, old + json.dumps(rec) + "\n")
    print(f"[rlboundary] probe of step {step} failed ({rec['error']}); training goes on. "
          f"Recorded in {path}; probe it later with `{rec['redo']}`", flush=True)
    return rec


def failures(run_dir: str) -> list[dict]:
    """The records of RUN_DIR/probe_failures.jsonl (empty when none failed)."""
    path = os.path.join(run_dir, FAILURES)
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]
