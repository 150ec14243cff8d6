"""One record schema for every dataset, and the checks that name a malformed row.

Every task (Omni-MATH-Rule, MATH500, the synthetic arithmetic task) yields `Record`s, so the
sampler, verifier, probes and the verl parquet writer never care where a problem came from.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

SPLITS = ("train", "validation", "test")


class BadRecord(ValueError):
    """A data row that cannot become a Record; the message names the source and the row."""


@dataclass(frozen=True)
class Record:
    id: str
    problem: str
    answer: str
    split: str
    difficulty: float = math.nan
    domain: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def require(row: dict, key: str, where: str) -> str:
    """Return row[key] as a non-empty string or raise BadRecord naming `where`."""
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRecord(f"{where}: missing or empty field '{key}'")
    if not isinstance(value, (str, int, float)):
        raise BadRecord(f"{where}: field '{key}' has type {type(value).__name__}, want str")
    return str(value)


def read_jsonl(path: str, source: str) -> list[dict]:
    """Read a jsonl file; a line that is not a JSON object raises BadRecord with its number."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadRecord(f"{source} {path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise BadRecord(f"{source} {path}:{lineno}: expected a JSON object")
            rows.append(row)
    return rows


def text_hash(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def ids_sha256(records: list[Record]) -> str:
    """sha256 of the sorted id list, one id per line: the manifest's fingerprint of a split."""
    joined = "\n".join(sorted(r.id for r in records))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()
