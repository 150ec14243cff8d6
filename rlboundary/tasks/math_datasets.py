"""Omni-MATH-Rule (train + in-domain test) and MATH500 (out-of-domain test).

The study split Omni-MATH-Rule 2000/821 but never published the split, so ours is a deterministic
seeded split by problem-text hash: problems with identical text (2821 rows, 2816 unique texts)
always land on the same side, and the manifest records the sha256 of each side's sorted ids.
"""

from __future__ import annotations

import os
import urllib.request

from rlboundary.tasks.schema import BadRecord, Record, read_jsonl, require, text_hash
from rlboundary.tasks.verify import extract_answer

OMNI_URL = ("https://raw.githubusercontent.com/KbsdJames/omni-math-rule/"
            "4793415ef37d31c9cdb4e5b82dbe172f76f8cf08/omni_math_rule.jsonl")
MATH500_URL = ("https://raw.githubusercontent.com/KbsdJames/omni-math-rule/"
               "4793415ef37d31c9cdb4e5b82dbe172f76f8cf08/evaluation/data/math/test.jsonl")


def resolve_source(source: str | None, url: str, cache_dir: str, filename: str) -> str:
    """A local path if given and present; else a cached download of the public file."""
    if source:
        if not os.path.exists(source):
            raise FileNotFoundError(f"data source not found: {source}")
        return source
    target = os.path.join(cache_dir, "data", filename)
    if not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = target + ".part"
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as exc:
            raise FileNotFoundError(
                f"no local source given and downloading {url} failed ({exc}); "
                f"pass data.source=PATH (e.g. ../shared/data/{filename})") from None
        os.replace(tmp, target)
    return target


def normalise_answer(answer: str) -> str:
    """Unwrap answers stored as `\\[ \\boxed{...} \\]` (some Omni-MATH-Rule rows are)."""
    if "\\boxed" in answer:
        inner = extract_answer(answer)
        if inner:
            return inner
    return answer.strip()


def gold_answers(path: str, source: str) -> list[str]:
    """The gold answers of an Omni-MATH-Rule or MATH500 jsonl file, in file order, unwrapped as
    the loaders unwrap them (what bench/bench_verify_gold.py and bench_reward_holes.py audit);
    BadRecord names a row without one."""
    return [normalise_answer(require(row, "answer", f"{source} row {i + 1}"))
            for i, row in enumerate(read_jsonl(path, source))]


def load_omni_math_rule(path: str, seed: int = 0, n_test: int = 821) -> list[Record]:
    rows = read_jsonl(path, "omni_math_rule")
    records = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        where = f"omni_math_rule row {i + 1}"
        problem, answer = require(row, "problem", where), require(row, "answer", where)
        base = "omni-" + text_hash(problem + "\x00" + answer)
        seen[base] = seen.get(base, 0) + 1
        rid = base if seen[base] == 1 else f"{base}-{seen[base] - 1}"
        domain = row.get("domain") or []
        records.append(Record(
            id=rid, problem=problem, answer=normalise_answer(answer), split="train",
            difficulty=float(row.get("difficulty", "nan")),
            domain="; ".join(domain) if isinstance(domain, list) else str(domain),
            source=str(row.get("source", "")), metadata={"row": i},
        ))
    test_groups = _split_groups(records, seed, n_test)
    return [Record(**{**r.to_dict(), "split": "test" if text_hash(r.problem) in test_groups
                      else "train"}) for r in records]


def _split_groups(records: list[Record], seed: int, n_test: int) -> set[str]:
    """Problem-text groups for the test side, filled greedily in seeded-hash order."""
    sizes: dict[str, int] = {}
    for r in records:
        key = text_hash(r.problem)
        sizes[key] = sizes.get(key, 0) + 1
    order = sorted(sizes, key=lambda g: text_hash(f"{seed}:{g}", 64))
    chosen, count = set(), 0
    for g in order:
        if count + sizes[g] <= n_test:
            chosen.add(g)
            count += sizes[g]
        if count == n_test:
            break
    if count != n_test:
        raise BadRecord(f"cannot fill a test split of {n_test} from {len(records)} records")
    return chosen


def load_math500(path: str) -> list[Record]:
    records = []
    for i, row in enumerate(read_jsonl(path, "math500")):
        where = f"math500 row {i + 1}"
        problem, answer = require(row, "problem", where), require(row, "answer", where)
        uid = str(row.get("unique_id") or f"row{i}")
        level = row.get("level")
        records.append(Record(
            id="math500-" + uid.replace("/", "_").removesuffix(".json"), problem=problem,
            answer=normalise_answer(answer), split="test",
            difficulty=float(level) if isinstance(level, (int, float)) else float("nan"),
            domain=str(row.get("subject", "")), source="MATH500", metadata={"row": i},
        ))
    return records
