"""The store's boundary (row validation, provenance, file modes) and user mistakes at the CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rlboundary.probing import plan
from rlboundary.results.metrics import upsert_metrics
from rlboundary.results.store import BadRows, ProbeStore, check_rows, write_parquet


def _table(n, c, ids=("p1", "p2")):
    return pd.DataFrame({"problem_id": list(ids), "dataset": "arith", "step": 3, "n": n, "c": c})


@pytest.mark.parametrize("n, c, what", [
    ([4, 4], [4, 0.5], "problem 'p2': c=0.5 is not a whole number"),
    ([4, 4], [4, float("nan")], "problem 'p2': c=nan is not a whole number"),
    ([4, 4], [5, 1], "problem 'p1': c=5 with n=4"),
    ([4, 0], [1, 0], "problem 'p2': n=0 with n=0")])
def test_bad_rows_are_rejected_with_problem_dataset_step_and_file(tmp_path, n, c, what):
    with pytest.raises(BadRows, match="f.parquet: dataset arith step 3 " + what):
        check_rows(_table(n, c), "f.parquet")
    store = ProbeStore(str(tmp_path), "arith", 3)
    write_parquet(_table(n, c), store.final)  # a file some other tool wrote
    with pytest.raises(BadRows, match=f"{store.final}: dataset arith step 3"):
        store.load()
    with pytest.raises(BadRows):
        store.write_part(0, _table(n, c), None)
    assert check_rows(_table([4, 4], [4.0, 0.0]), "ok")["c"].dtype == np.int64


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = ProbeStore(str(tmp_path), "arith", 0)
        write_parquet(_table([4, 4], [1, 2]), store.final, provenance={"n": 4})
        upsert_metrics(str(tmp_path), {"step": 0, "dataset": "arith", "pass@1": 0.5})
        from rlboundary.fileio import write_text
        write_text(str(tmp_path / "manifest.json"), "{}")
        for f in (store.final, tmp_path / "metrics.jsonl", tmp_path / "manifest.json"):
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o644, f
        os.umask(0o077)
        upsert_metrics(str(tmp_path), {"step": 1, "dataset": "arith", "pass@1": 0.5})
        assert stat.S_IMODE(os.stat(tmp_path / "metrics.jsonl").st_mode) == 0o600
    finally:
        os.umask(old)


def test_reuse_only_when_provenance_matches(tmp_path):
    store = ProbeStore(str(tmp_path), "arith", 0)
    prov = {"n": 256, "sampling": {"temperature": 1.0}, "checkpoint": "/a"}
    write_parquet(_table([256, 256], [1, 2]), store.final, provenance=prov)
    # the same settings from another path: reused
    assert plan.reuse_or_clear(store, {**prov, "checkpoint": "/b"}, {}, "x")
    # n=64 now: refused with one line naming the difference and the way out
    other = {**prov, "n": 64}
    with pytest.raises(plan.ProvenanceMismatch) as e:
        plan.reuse_or_clear(store, other, {}, "arith step 0")
    msg = str(e.value)
    assert "\n" not in msg and "n=256 (now 64)" in msg and "force=true" in msg
    assert "run_dir" in msg
    # force=true: the old result goes, the probe is redone
    assert not plan.reuse_or_clear(store, other, {"force": True}, "x")
    assert not store.done()


def test_results_stored_before_drawn_dtype_are_still_found_and_reused(tmp_path):
    """sampler.drawn_dtype (a key added later): a stored record without it matches, a record
    with another dtype does not, an unresolvable one (None) is not compared, and the shared
    base probe stored under its older cache key is still found."""
    from rlboundary.results.provenance import differences, without_added_later

    prov = {"n": 4, "sampler": {"name": "hf", "dtype": "auto", "drawn_dtype": "float32"},
            "checkpoint": "/a"}
    old = without_added_later(prov)
    assert old == {"n": 4, "sampler": {"name": "hf", "dtype": "auto"}, "checkpoint": "/a"}
    assert "drawn_dtype" in prov["sampler"]  # the input is not changed
    assert differences(old, prov) == []
    bf16 = {**prov, "sampler": {**prov["sampler"], "drawn_dtype": "bfloat16"}}
    assert differences(prov, bf16) == ["sampler.drawn_dtype=float32 (now bfloat16)"]
    unknown = {**prov, "sampler": {**prov["sampler"], "drawn_dtype": None}}
    assert differences(prov, unknown) == []
    cfg = {"cache_dir": str(tmp_path)}
    fresh = plan.base_store(cfg, "arith", [], prov)
    legacy = plan.base_store(cfg, "arith", [], old)
    assert fresh.final != legacy.final and not fresh.done()
    write_parquet(_table([4, 4], [1, 2]).assign(step=0), legacy.final, provenance=old)
    assert plan.base_store(cfg, "arith", [], prov).final == legacy.final
    # a result of unknown dtype matches any; one recorded in float32 is not bfloat16's
    write_parquet(_table([4, 4], [1, 2]).assign(step=0), fresh.final, provenance=prov)
    assert plan.base_store(cfg, "arith", [], prov).final == fresh.final
    assert plan.base_store(cfg, "arith", [], bf16).final == legacy.final
    legacy.clear()
    assert plan.base_store(cfg, "arith", [], bf16).final not in (legacy.final, fresh.final)


def test_metrics_keep_lock_and_kind(tmp_path):
    upsert_metrics(str(tmp_path), {"kind": "train", "step": 1, "loss": 1.0})
    upsert_metrics(str(tmp_path), {"step": 1, "dataset": "arith", "pass@1": 0.5})
    upsert_metrics(str(tmp_path), {"kind": "train", "step": 1, "loss": 2.0})
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"kind": "train", "step": 1, "loss": 2.0} in rows


def _cli(*args, env=None):
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "rlboundary.cli", *args],
                          capture_output=True, text=True, env=e, timeout=600, check=False)


def _one_line_exit_2(r, *fragments):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_bad_settings_are_one_line_and_exit_2(tmp_path):
    _one_line_exit_2(_cli("probe", "n=four"), "n='four'", "whole number")
    _one_line_exit_2(_cli("probe", "nn=4"), "nn")
    _one_line_exit_2(_cli("probe", f"base={tmp_path}/missing"), "base model not found")
    r = _cli("probe", "--help")
    assert r.returncode == 0 and "config groups" in r.stdout and "sampler: hf, vllm" in r.stdout
    r = _cli("probe", "--cfg", "job", "n=3")
    assert r.returncode == 0 and "'n': 3" in r.stdout.splitlines()
    assert _cli("train", "--cfg", "job").returncode == 0
    _one_line_exit_2(_cli("train", "rollout.n=zero"), "rollout.n='zero'", "whole number")
    _one_line_exit_2(_cli("train", "actor.loss_agg_mode=mean"), "loss_agg_mode", "token-mean")
    _one_line_exit_2(_cli("train", "trainer.probe=later"), "trainer.probe",
                     "async, sync, after (engine=verl) or off")
    _one_line_exit_2(_cli("train", "algorithm=ppo2"), "algorithm")


def test_cli_user_mistakes_with_a_model(random_tiny_model, tmp_path):
    common = [f"base={random_tiny_model}", f"run_dir={tmp_path / 'run'}", "progress=false",
              f"cache_dir={tmp_path / 'cache'}"]
    _one_line_exit_2(_cli("probe", *common, f"model={tmp_path}/nope"), "checkpoint not found")
    _one_line_exit_2(_cli("probe", *common, "data=math500"), "data.source=PATH")


def test_results_of_other_settings_are_never_mixed(random_tiny_model, tmp_path):
    """The issue's mixing cases replayed in one run directory: a checkpoint probed by a series
    at n=8 and then alone at n=4, and the base re-probed at n=4 after n=8, are refused with one
    line naming the difference; force=true redoes it, and the table, metrics.jsonl and report
    then agree on the new n."""
    import shutil

    series = tmp_path / "series"
    shutil.copytree(random_tiny_model, series / "step_3")
    run = tmp_path / "run"
    common = [f"base={random_tiny_model}", f"run_dir={run}", "progress=false",
              f"cache_dir={tmp_path / 'cache'}", "probe.limit=4", "probe.chunk=4",
              "sampling.max_new_tokens=8"]
    assert _cli("probe", *common, f"series={series}", "n=8").returncode == 0
    _one_line_exit_2(_cli("probe", *common, f"model={series / 'step_3'}", "n=4"), "n=", "force")
    _one_line_exit_2(_cli("probe", *common, "n=4"), "n=", "force")
    table = pd.read_parquet(run / "probes" / "arithmetic" / "step_00000003.parquet")
    assert (table["n"] == 8).all()  # nothing was overwritten by a refused command
    r = _cli("probe", *common, f"model={series / 'step_3'}", "n=4", "force=true")
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(run / "probes" / "arithmetic" / "step_00000003.parquet")
    assert (table["n"] == 4).all()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    step3 = [x for x in lines if x.get("step") == 3 and x.get("kind", "probe") == "probe"]
    assert len(step3) == 1 and "pass@4" in step3[0] and "pass@8" not in step3[0]


def test_unreadable_prompts_stop_before_sampling_and_truncation_is_reported(
        random_tiny_model, tmp_path, omni_path):
    """The character-level tiny model cannot read Omni-MATH-Rule's prompts: one line naming
    the dataset and model, exit 2, nothing sampled. Samples that mostly hit the token limit are
    reported on the console and in metrics.jsonl."""
    common = [f"base={random_tiny_model}", "progress=false", f"cache_dir={tmp_path / 'cache'}",
              "probe.limit=4", "probe.chunk=4", "n=4"]
    r = _cli("probe", *common, f"run_dir={tmp_path / 'omni'}", "data=omni_math_rule",
             f"data.source={omni_path}")
    _one_line_exit_2(r, "unknown token", "omni_math_rule", str(random_tiny_model))
    assert not (tmp_path / "omni" / "probes").exists()
    r = _cli("probe", *common, f"run_dir={tmp_path / 'short'}", "sampling.max_new_tokens=1")
    assert r.returncode == 0, r.stderr
    assert "hit the token limit" in r.stdout
    lines = [json.loads(x) for x in (tmp_path / "short" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["truncated_share"] > 0.5
