"""RUN_DIR/control.json: the temperature control's record (written by
probing/temperature_control.py, drawn by the report).

Shape: ``{dataset: {target: entry}}`` with ``target`` ``policy`` (the checkpoint at T*, where
its token entropy equals the base's at T) or ``base`` (the base at T*, where its entropy equals
the checkpoint's at T); each entry holds ``temperature`` (T), ``matched_temperature`` (T*),
``target_entropy`` and ``matched_entropy`` (nats per token), ``trace`` (every bisection step),
``step``, ``checkpoint``, ``problems`` (the subset's size), ``run_dir`` (the control probe's run)
and ``metrics``.
"""

from __future__ import annotations

import json
import os

from rlboundary.fileio import write_json

CONTROL_FILE = "control.json"


def read_control(run_dir: str | os.PathLike) -> dict[str, dict[str, dict]]:
    """RUN_DIR/control.json as ``{dataset: {target: entry}}`` ({} when absent). A file written
    before ``target`` existed (one entry per dataset) reads as the ``base`` direction."""
    path = os.path.join(run_dir, CONTROL_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        raw = json.load(fh)
    return {name: ({"base": entry} if "matched_temperature" in entry else entry)
            for name, entry in raw.items()}


def write_control(run_dir: str | os.PathLike, record: dict[str, dict[str, dict]]) -> None:
    """Write ``record`` (the shape above) to RUN_DIR/control.json atomically."""
    write_json(os.path.join(run_dir, CONTROL_FILE), record)
