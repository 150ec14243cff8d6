"""Before sampling: is a stored result reusable, and where does the base model's probe live?

A stored result is reused only when its whole provenance record matches the one asked for now
(results/provenance.py: ``differences``); a result of other settings is replaced under
``force=true``, else :class:`ProvenanceMismatch` names the difference. The base model's probe
lives in a cache shared by every run naming the same base, keyed by that record.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from rlboundary.errors import UserError
from rlboundary.probing.provenance import provenance
from rlboundary.results.provenance import differences, without_added_later
from rlboundary.results.store import DamagedResult, ProbeStore
from rlboundary.tasks import TASKS
from rlboundary.tasks.schema import Record


class ProvenanceMismatch(UserError):
    """A stored result was produced with other settings than the ones asked for now."""


def reuse_or_clear(store: ProbeStore, prov: Mapping, cfg: Mapping, what: str) -> bool:
    """True when ``store`` holds a finished result of exactly ``prov`` (reuse it). A result of
    other settings is removed under ``force=true`` (False: redo), else ProvenanceMismatch."""
    try:
        stored = store.provenance()
    except DamagedResult as e:  # a damaged result is a missing one: probe the step again
        print(f"[rlboundary] warning: {e.path} is damaged ({e.why}); probing {what} again",
              flush=True)
        store.clear()
        stored = None
    if stored is None and not store.done() and not store.has_parts():
        return False
    diff = differences(stored, prov)
    if not diff:
        return store.done()
    if cfg.get("force") or (not store.done() and stored is None):  # stale parts: redo
        store.clear()
        return False
    raise ProvenanceMismatch(
        f"{store.final if store.done() else store.parts}: {what} was probed with other "
        f"settings: {'; '.join(diff[:4])}{' ...' if len(diff) > 4 else ''}. Use another "
        f"run_dir, or force=true to replace it")


def base_store(cfg: Mapping, dataset: str, records: list[Record],
               prov: Mapping[str, Any] | None = None) -> ProbeStore:
    """Where the base model's own probe lives: shared by every run naming the same base,
    keyed by its whole provenance (model, problems, n, sampling, sampler with the dtype it
    draws in, seed, verifier). A finished probe stored before a key of ``ADDED_LATER`` was
    recorded sits under the key of its older record: it is used when it matches."""
    if prov is None:
        prov = provenance(cfg, cfg["base_path"], records, TASKS.get(
            cfg["probe"]["datasets"][dataset].get("name", dataset)))
    def at(record: Mapping[str, Any]) -> ProbeStore:
        keyed = {k: v for k, v in record.items() if k != "checkpoint"}
        key = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()
                             ).hexdigest()[:16]
        return ProbeStore(os.path.join(cfg["cache_dir"], "base_probes", key), dataset, 0)

    store = at(prov)
    if not store.done():  # stored before the ADDED_LATER keys existed: under the older key
        older = at(without_added_later(prov))
        if older.done() and not differences(older.provenance(), prov):
            return older
    return store
