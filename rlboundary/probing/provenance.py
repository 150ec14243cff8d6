"""What a probe's result depends on (:func:`provenance`), hashed from the model's and base
model's bytes, the problems, n, sampling, sampler, seed, verifier, result format and adaptive
settings. The probe runner reuses a stored result only when all of it matches (probing/plan.py);
how two records differ is the results format's (results/provenance.py).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

from rlboundary.probing import adaptive as adaptive_probe
from rlboundary.results.provenance import FORMAT
from rlboundary.tasks import Task
from rlboundary.tasks.schema import Record, ids_sha256

_HASHES: dict[tuple, str] = {}
_DRAWN: dict[tuple, str] = {}


def checkpoint_hash(path: str) -> str:
    """sha256 over a checkpoint's files (names and bytes), ignoring our own build notes.

    Memoised per process on (path, every file's size and mtime)."""
    entries = []
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            if name == "build_info.json" or name.endswith(".part"):
                continue
            full = os.path.join(root, name)
            st = os.stat(full)
            entries.append((os.path.relpath(full, path), full, st.st_size, st.st_mtime_ns))
    key = (os.path.abspath(path), tuple((e[0], e[2], e[3]) for e in entries))
    if key not in _HASHES:
        h = hashlib.sha256()
        for rel, full, _, _ in entries:
            h.update(rel.encode())
            with open(full, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        _HASHES[key] = h.hexdigest()[:16]
    return _HASHES[key]


def data_hash(records: list[Record]) -> str:
    """sha256 of the problems' ids, texts and answers (what a probe of them depends on)."""
    h = hashlib.sha256(ids_sha256(records).encode())
    for r in records:
        h.update(b"\0" + r.id.encode() + b"\0" + r.problem.encode() + b"\0" + r.answer.encode())
    return h.hexdigest()[:16]


def verifier_version() -> str:
    """rlboundary's verifier sources and math-verify's version, hashed."""
    import glob
    from importlib import metadata

    import rlboundary.tasks as tasks_pkg

    h = hashlib.sha256()
    for f in sorted(glob.glob(os.path.join(os.path.dirname(tasks_pkg.__file__), "verify*.py"))):
        with open(f, "rb") as fh:
            h.update(fh.read())
    try:
        mv = metadata.version("math-verify")
    except metadata.PackageNotFoundError:
        mv = "absent"
    return f"math-verify {mv}, sources {h.hexdigest()[:12]}"


#: Sampler knobs that cannot change a sample (threads); everything else is provenance.
_SAMPLER_IRRELEVANT = ("torch_threads",)


def chat_template(cfg: Mapping) -> str:
    """``data.chat_template`` of the probe settings: ``none`` (the prompt as rendered) or
    ``model`` (under the probed model's chat template, samplers/tokens.py:as_chat)."""
    return str((cfg.get("data") or {}).get("chat_template") or "none")


def drawn_dtype(spec: Mapping, model_path: str) -> str | None:
    """The dtype the sampler ``spec`` (conf/sampler/*.yaml) will draw samples of ``model_path``
    in, resolved as the sampler itself resolves ``dtype=auto`` (``resolved_dtype`` of its class;
    vLLM's rule for ``vllm``). Memoised per process. A sampler without ``resolved_dtype``
    records its ``dtype`` setting as given; None where the sampler's engine is not installed
    here (a stored result is then matched without it; sampling would fail with the install
    hint). Raises KeyError for a sampler name not registered."""
    from rlboundary.samplers import SAMPLERS

    kw = {k: v for k, v in dict(spec).items() if k != "name"}
    key = (spec["name"], os.path.abspath(model_path), str(kw.get("dtype")), str(kw.get("device")))
    if key not in _DRAWN:
        resolve = getattr(SAMPLERS.get(spec["name"]), "resolved_dtype", None)
        try:
            _DRAWN[key] = resolve(model_path, **kw) if resolve else str(kw.get("dtype", "auto"))
        except ImportError:
            return None
    return _DRAWN[key]


def provenance(cfg: Mapping, model_path: str, records: list[Record], task: Task) -> dict:
    """What a probe's result depends on: model, base model (its NLL scores the samples),
    problems, n, sampling, sampler and its settings (with ``drawn_dtype``, the dtype samples
    are drawn in once ``auto`` is resolved), seed, verifier, result format.

    ``checkpoint`` (the path) is recorded for the reader but not compared (see
    results/provenance.differences).
    """
    sampler = {k: v for k, v in dict(cfg["sampler"]).items() if k not in _SAMPLER_IRRELEVANT}
    sampler["drawn_dtype"] = drawn_dtype(cfg["sampler"], model_path)
    adaptive = adaptive_probe.settings(cfg["probe"])
    return {**({"adaptive": adaptive} if adaptive else {}), "format": FORMAT, "model_sha": checkpoint_hash(model_path),
            "base_sha": checkpoint_hash(cfg["base_path"]), "task": task.name,
            "data_sha": data_hash(records), "problems": len(records), "n": int(cfg["n"]),
            "seed": int(cfg["probe"]["seed"]), "sampling": dict(cfg["sampling"]), "sampler": sampler,
            "verifier": verifier_version(), "checkpoint": os.path.abspath(model_path),
            # recorded only when set, so results probed before the setting existed still match
            **({"chat_template": "model"} if chat_template(cfg) == "model" else {})}
