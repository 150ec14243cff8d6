"""What a probe reads: a dataset's held-out problems, a checkpoint series, and the check that
the model's tokenizer can read the prompts at all.

All three fail before any sampling, with one line naming the dataset, path or problem.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from rlboundary.errors import UserError
from rlboundary.tasks import TASKS, Task
from rlboundary.tasks.prompts import render
from rlboundary.tasks.schema import Record


def load_dataset(name: str, spec: Mapping, cache_dir: str, limit: int | None
                 ) -> tuple[Task, list[Record]]:
    """A dataset's held-out split (``spec["probe_split"]`` where the dataset has several, else
    test), in id order, truncated to `limit` problems."""
    spec = dict(spec)
    task = TASKS.get(spec.pop("name", name))
    split = spec.pop("probe_split", "test")
    records = sorted((r for r in task.load(cache_dir=cache_dir, **spec) if r.split == split),
                     key=lambda r: r.id)
    if not records:
        raise ValueError(f"{name}: no {split!r} problems to probe (data.probe_split)")
    return task, records[:limit] if limit else records


def check_prompts(cfg: Mapping, name: str, task: Task, records: list[Record],
                  max_unknown: float = 0.05) -> None:
    """Refuse, before sampling, a model whose tokenizer cannot encode the prompts: more than
    ``max_unknown`` of some prompt's tokens are the unknown token (or the tokenizer drops more
    than that share of its characters). Raises UserError naming dataset and model."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(cfg["base_path"])
    unk = tok.unk_token_id
    worst, worst_id = 0.0, None
    for r in records:
        text = render(task.template, r.problem)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        share = (sum(i == unk for i in ids) / len(ids)) if unk is not None else 0.0
        if share > worst:
            worst, worst_id = share, r.id
    if worst > max_unknown:
        raise UserError(
            f"the tokenizer of {cfg['base_path']} maps {worst:.0%} of the tokens of {name} "
            f"problem {worst_id!r} to its unknown token (limit {max_unknown:.0%}): this model "
            f"cannot read {name}'s prompts; probe it on a dataset it was built for")


def find_checkpoints(series_dir: str) -> list[tuple[int, str]]:
    """HF checkpoints under `series_dir` with their steps, sorted by step.

    A checkpoint is a directory holding config.json and weights (*.safetensors or *.bin); its
    step is the last integer in its path relative to `series_dir` (``global_step_40/actor/
    huggingface``, ``checkpoint-40``, ``step_40`` all give 40).
    """
    found = []
    for root, dirs, files in os.walk(series_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # half-written .tmp_* checkpoints
        if "config.json" in files and any(f.endswith((".safetensors", ".bin")) for f in files):
            rel = os.path.relpath(root, series_dir)
            nums = re.findall(r"\d+", rel)
            if not nums:
                raise ValueError(f"cannot tell the step of checkpoint {root}: no number in "
                                 f"its path relative to {series_dir}")
            found.append((int(nums[-1]), root))
    if not found:
        raise FileNotFoundError(f"no HF checkpoints (config.json + weights) under {series_dir}")
    steps = [s for s, _ in found]
    dup = {s for s in steps if steps.count(s) > 1}
    if dup:
        raise ValueError(f"several checkpoints claim step(s) {sorted(dup)} under {series_dir}")
    return sorted(found)
