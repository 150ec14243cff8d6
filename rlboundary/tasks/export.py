"""Write a task as verl-ready parquet plus a manifest that fingerprints each split.

verl's RLHFDataset reads `prompt` as a list of chat messages; we store the fully templated raw
prompt as the single user message (the study used base models, no chat template) and again as
`raw_prompt_text` for rlboundary's own engine. Files are written atomically, with the user's
umask (rlboundary.fileio).
"""

from __future__ import annotations

import json
import os

import pandas as pd

from rlboundary.fileio import atomic_write, write_text
from rlboundary.tasks import Task
from rlboundary.tasks.prompts import render
from rlboundary.tasks.schema import Record, ids_sha256


def verl_rows(task: Task, records: list[Record]) -> list[dict]:
    rows = []
    for index, r in enumerate(records):
        text = render(task.template, r.problem)
        rows.append({
            "data_source": task.name,
            "prompt": [{"role": "user", "content": text}],
            "raw_prompt_text": text,
            "ability": task.ability,
            "reward_model": {"style": "rule", "ground_truth": r.answer},
            "extra_info": {"index": index, "id": r.id, "split": r.split,
                           "difficulty": r.difficulty,
                           "domain": r.domain, "source": r.source, "problem": r.problem},
        })
    return rows



def manifest(task: Task, records: list[Record], settings: dict) -> dict:
    splits = sorted({r.split for r in records})
    return {
        "task": task.name,
        "settings": settings,
        "splits": {s: {"count": sum(r.split == s for r in records),
                       "ids_sha256": ids_sha256([r for r in records if r.split == s])}
                   for s in splits},
    }


def write_dataset(task: Task, records: list[Record], out_dir: str, settings: dict) -> dict:
    """Write <out_dir>/<split>.parquet per split and manifest.json; return the manifest."""
    for split in sorted({r.split for r in records}):
        frame = pd.DataFrame(verl_rows(task, [r for r in records if r.split == split]))
        atomic_write(os.path.join(out_dir, f"{split}.parquet"),
                     lambda tmp, f=frame: f.to_parquet(tmp, index=False))
    man = manifest(task, records, settings)
    write_text(os.path.join(out_dir, "manifest.json"), json.dumps(man, indent=2, default=str))
    return man
