"""The provenance record every stored probe result carries, as the results format defines it:
its version (:data:`FORMAT`), how two records differ (:func:`differences`) and the one-line
summary metrics.jsonl and the report show (:func:`settings_line`). What goes into a record is
the probe runtime's (probing/provenance.py); where it is stored, the store's (results/store.py).
"""

from __future__ import annotations

from collections.abc import Mapping

#: Version of the stored-result format (bumped when a column's meaning changes).
FORMAT = 3   # 3: samples keyed by problem id (samplers/keyed.py)


def flat(d: Mapping, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: a nested record as dotted keys."""
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


#: Keys recorded since a later version: a stored record without one still matches.
ADDED_LATER = ("sampler.drawn_dtype",)


def without_added_later(record: Mapping) -> dict:
    """``record`` without its :data:`ADDED_LATER` keys: the record an older rlboundary wrote."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in record.items()}
    for key in ADDED_LATER:
        head, _, leaf = key.rpartition(".")
        node = out.get(head) if head else out
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def differences(stored: Mapping | None, wanted: Mapping) -> list[str]:
    """Human-readable differences ``"n=256 (now 64)"`` between two provenance records,
    ignoring the checkpoint path and :data:`ADDED_LATER` keys the stored record lacks or that
    ``wanted`` could not resolve (None);
    ``["no record of its settings"]`` when ``stored`` is None."""
    if stored is None:
        return ["no record of its settings (written by an older rlboundary)"]
    a, b = flat(stored), flat(wanted)
    a.pop("checkpoint", None), b.pop("checkpoint", None)
    for key in ADDED_LATER:  # absent from an older record, or not resolvable here (None)
        if key not in a or b.get(key, "") is None:
            a.pop(key, None), b.pop(key, None)
    return [f"{k}={a.get(k, '-')} (now {b.get(k, '-')})"
            for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]


def settings_line(prov: Mapping) -> str:
    """A short line of the settings a result was probed with (for metrics, report, console)."""
    s = prov.get("sampling", {})
    return (f"n={prov.get('n')} T={s.get('temperature')} top_p={s.get('top_p')} "
            f"max_new={s.get('max_new_tokens')} sampler={prov.get('sampler', {}).get('name')} "
            f"seed={prov.get('seed')} model={prov.get('model_sha')} data={prov.get('data_sha')}"
            + (" adaptive(round={round} tol={tol} min={min_samples})".format(**prov["adaptive"])
               if prov.get("adaptive") else ""))
