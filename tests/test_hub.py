"""Checkpoints by name: `base.path`, `model=` and `series=` take hub ids (`org/name@revision`),
resolved through huggingface_hub's own cache. The cache here is built by the test in the hub's
layout (models--org--name/{refs,snapshots}), and the CLI runs offline (HF_HUB_OFFLINE=1), so
huggingface_hub reads it as it would after a download."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlboundary import hub

COMMITS = {"main": "0" * 40, "step-7": "7" * 40, "step-9": "9" * 40}


def _cache(root: Path, repo: str, revisions: dict[str, str]) -> Path:
    """A hub cache holding ``repo`` at each ``{revision: model folder}`` (one snapshot per
    commit, refs naming them), as ``huggingface-cli download`` leaves it."""
    folder = root / f"models--{repo.replace('/', '--')}"
    for revision, source in revisions.items():
        commit = COMMITS[revision]
        shutil.copytree(source, folder / "snapshots" / commit)
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / revision).write_text(commit)
    return root


def _sharper(base: str, out: Path, factor: float) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        model.model.norm.weight.mul_(factor)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return str(out)


def _cli(tmp_path: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "rlboundary.cli", *args], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600, check=False)


def test_hub_ids_are_told_from_paths():
    assert hub.is_hub_id("Qwen/Qwen2.5-7B") and hub.is_hub_id("org/run@step-150")
    assert not hub.is_hub_id("/models/Qwen2.5-7B") and not hub.is_hub_id("./org/name")
    assert not hub.is_hub_id("runs") and not hub.is_hub_id("a/b/c")
    assert hub.split_id("org/run@step-150") == ("org/run", "step-150")
    assert hub.split_id("org/run") == ("org/run", None)
    assert hub.step_of("org/run@step-150") == 150
    assert hub.step_of("org/grpo-step300") == 300
    assert hub.step_of("runs/x/global_step_40") == 40 and hub.step_of("org/base") is None


def test_a_mistyped_local_path_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    """`model=runs/tiny` with a runs/ folder here: a missing checkpoint, not a hub lookup; an id
    the hub would reject is one line, not a traceback."""
    from rlboundary.errors import MissingPath, UserError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert not hub.is_hub_id("runs/tiny") and hub.is_hub_id("org/tiny")
    with pytest.raises(MissingPath, match="checkpoint not found: runs/tiny"):
        hub.resolve("runs/tiny", "model")
    with pytest.raises(UserError, match="model=org/na--me: not a valid hub id"):
        hub.resolve("org/na--me", "model")


@pytest.mark.slow
def test_probe_by_hub_id_offline_from_the_cache(tmp_path, trained_base, base_overrides):
    """`probe model=org/run@step-7 base=org/base` and `series=[org/run@step-7,org/run@step-9]`
    read huggingface_hub's cache offline; the probes hash the snapshot's files (the same
    weights under a hub id and as a folder give one model_sha); a revision the cache lacks is
    one line naming the download command."""
    cache = _cache(tmp_path / "hub", "org/base", {"main": trained_base})
    _cache(cache, "org/run", {"step-7": _sharper(trained_base, tmp_path / "s7", 1.5),
                              "step-9": _sharper(trained_base, tmp_path / "s9", 2.0)})
    common = ["base.path=org/base", "n=4", "probe.limit=4", "progress=false",
              *base_overrides]
    one = _cli(tmp_path, cache, "probe", "model=org/run@step-7", "run_dir=one", *common)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "step      7 arithmetic" in one.stdout
    from rlboundary.results.store import ProbeStore

    prov = ProbeStore(str(tmp_path / "one"), "arithmetic", 7).provenance()
    from rlboundary.probing.provenance import checkpoint_hash

    assert prov["model_sha"] == checkpoint_hash(str(tmp_path / "s7"))
    assert prov["base_sha"] == checkpoint_hash(trained_base)
    many = _cli(tmp_path, cache, "probe", "series=[org/run@step-9,org/run@step-7]",
                "run_dir=many", *common)
    assert many.returncode == 0, many.stderr[-3000:]
    series = json.loads((tmp_path / "many" / "series.json").read_text())
    assert series["steps"] == [0, 7, 9]
    assert series["checkpoints"]["9"].endswith(COMMITS["step-9"])
    missing = _cli(tmp_path, cache, "probe", "model=org/run@step-11", "run_dir=x", *common)
    err = missing.stderr.strip().splitlines()
    assert missing.returncode == 2 and len(err) == 1, missing.stderr[-2000:]
    assert "model=org/run@step-11: not in the hub cache" in err[0]
    assert "huggingface-cli download org/run --revision step-11" in err[0]
