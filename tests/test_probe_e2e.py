"""End to end: the CLI probes a base model and a checkpoint series, resumes after SIGKILL and
gives the same rows as an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from rlboundary.cli import main
from rlboundary.probing.inputs import find_checkpoints

QUICK = ["progress=false", "probe.limit=24", "probe.chunk=4",
         "sampling.max_new_tokens=64"]


@pytest.fixture(scope="module")
def quick_base(trained_base):
    """The session's test base: enough for the mechanics of probing."""
    return trained_base


def sharpened(base: str, dest: str, factor: float) -> str:
    """A stand-in RL checkpoint: the base with logits scaled by `factor` (= sampling at T/factor),
    which raises pass@1 and narrows coverage, the shape the study reports."""
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        model.model.norm.weight.mul_(factor)
    model.save_pretrained(dest)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(base, f), dest)
    return dest


def rows(run_dir: str, step: int = 0) -> pd.DataFrame:
    return pd.read_parquet(os.path.join(run_dir, "probes", "arithmetic", f"step_{step:08d}.parquet"))


def test_series_probe_and_report(quick_base, tmp_path):
    series = tmp_path / "series"
    sharpened(quick_base, str(series / "global_step_10"), 1.5)
    sharpened(quick_base, str(series / "global_step_20"), 3.0)
    assert [s for s, _ in find_checkpoints(str(series))] == [10, 20]
    run = tmp_path / "run"
    assert main(["probe", *QUICK, "n=16", f"base={quick_base}", f"series={series}",
                 f"run_dir={run}"]) == 0
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 10, 20]
    base, last = rows(str(run), 0), rows(str(run), 20)
    assert list(base["problem_id"]) == list(last["problem_id"]) and len(base) == 24
    assert (base["n"] == 16).all()
    assert metrics[0]["pass@1"] == pytest.approx((base["c"] / 16).mean())
    assert "coverage/both" in metrics[2] and "transitions/gained" in metrics[2]
    # Sharper sampling: lower entropy, and its samples are likelier under the base model.
    assert metrics[2]["entropy"] < metrics[0]["entropy"]
    assert metrics[2]["ppl_base"] < metrics[0]["ppl_base"]
    assert (run / "report" / "index.html").exists()


def _probe_cmd(base: str, run_dir: str) -> list[str]:
    return [sys.executable, "-m", "rlboundary.cli", "probe", *QUICK, "n=32", "probe.limit=40",
            f"base={base}", f"run_dir={run_dir}"]


@pytest.mark.slow
def test_probe_killed_with_sigkill_resumes_to_identical_rows(quick_base, tmp_path):
    env = dict(os.environ, RLBOUNDARY_CACHE=str(tmp_path / "cache_a"))
    subprocess.run(_probe_cmd(quick_base, str(tmp_path / "whole")), env=env, check=True,
                   capture_output=True)
    env["RLBOUNDARY_CACHE"] = str(tmp_path / "cache_b")
    cut = str(tmp_path / "cut")
    proc = subprocess.Popen(_probe_cmd(quick_base, cut), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    parts = tmp_path / "cache_b" / "base_probes"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        found = list(parts.rglob("part_*.parquet")) if parts.exists() else []
        if len(found) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the probe finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "cut" / "probes").exists()
    subprocess.run(_probe_cmd(quick_base, cut), env=env, check=True, capture_output=True)
    pd.testing.assert_frame_equal(rows(cut), rows(str(tmp_path / "whole")))
    samples = lambda d: pd.read_parquet(os.path.join(
        d, "probes", "arithmetic", "step_00000000.samples.parquet")).drop(columns="token_ids")
    pd.testing.assert_frame_equal(samples(cut), samples(str(tmp_path / "whole")))


@pytest.mark.slow
def test_ray_fanout_gives_the_same_rows_as_one_process(quick_base, tmp_path):
    """Two Ray workers sample disjoint chunks, each seeded by its index: the driver's merge
    must equal the single-process probe row for row."""
    pytest.importorskip("ray")
    common = ["probe", *QUICK, "n=8", "probe.limit=16", f"base={quick_base}"]
    for name, workers in (("one", 1), ("ray", 2)):
        assert main([*common, f"probe.workers={workers}", f"run_dir={tmp_path / name}",
                     f"cache_dir={tmp_path / ('cache_' + name)}"]) == 0
    pd.testing.assert_frame_equal(rows(str(tmp_path / "ray")), rows(str(tmp_path / "one")))
    assert len(rows(str(tmp_path / "ray"))) == 16


def test_vllm_entropy_is_named_as_a_monte_carlo_estimate(tmp_path):
    """vLLM gives only the sampled tokens' logprobs: the metric must say it is an estimate."""
    from rlboundary.probing.metrics import probe_metrics

    cur = pd.DataFrame({"problem_id": ["a", "b"], "n": [4, 4], "c": [1, 0],
                        "entropy": [0.5, 1.5], "n_tokens": [10, 30]})
    out = {}
    for sampler in ("hf", "vllm"):
        cfg = {"probes": {"entropy": {}}, "sampler": {"name": sampler},
               "run_dir": str(tmp_path / sampler)}
        out[sampler] = probe_metrics(cfg, "arithmetic", 0, cur, cur)
    assert out["hf"]["entropy"] == pytest.approx((0.5 * 10 + 1.5 * 30) / 40)
    assert "entropy" not in out["vllm"] and out["vllm"]["entropy_mc"] == out["hf"]["entropy"]


def test_the_base_probing_itself_reuses_the_samplers_logprobs(quick_base):
    """Step 0 at T=1, top-p 1: nll_base comes from the sampler's own log-probs (no second
    forward pass) and equals the teacher-forced score of the same tokens."""
    from rlboundary.commands import compose, plain
    from rlboundary.probing.fanout import ChunkWorker
    from rlboundary.probing.inputs import load_dataset
    from rlboundary.samplers.scoring import score_nll
    from rlboundary.tasks.prompts import render

    cfg = plain(compose([]))
    task, recs = load_dataset("arithmetic", cfg["data"], cfg["cache_dir"], 3)
    worker = ChunkWorker(quick_base, quick_base, cfg["sampler"])
    job = dict(task="arithmetic", n=8, seed=0, has_trace=True,
               sampling={"max_new_tokens": 64, "temperature": 1.0, "top_p": 1.0})
    _, samples = worker.run(0, recs, job)
    prompts = [render(task.template, r.problem) for r in recs]
    nll, _ = score_nll(worker.sampler.model, worker.sampler.tokenizer,  # the base itself
                       [prompts[i // 8] for i in range(len(samples))],
                       list(samples["token_ids"]))
    assert len(samples) == 24
    assert abs(samples["nll_base"].to_numpy() - nll).max() < 1e-3
    worker.close()


def test_post_stage_in_a_process_gives_the_threads_rows(quick_base, tmp_path):
    """probe.post=process (a child interpreter verifies and scores) and probe.post=thread
    write the same rows; a checkpoint other than the base exercises the scoring pass."""
    ckpt = sharpened(quick_base, str(tmp_path / "step_3"), 2.0)
    common = ["probe", *QUICK, "n=8", "probe.limit=8", f"base={quick_base}", f"model={ckpt}"]
    for mode in ("thread", "process"):
        assert main([*common, f"probe.post={mode}", f"run_dir={tmp_path / mode}",
                     f"cache_dir={tmp_path / ('cache_' + mode)}"]) == 0
    for step in (0, 3):
        pd.testing.assert_frame_equal(rows(str(tmp_path / "process"), step),
                                      rows(str(tmp_path / "thread"), step))


def test_post_process_reports_the_childs_error(tmp_path):
    from rlboundary.probing.post_worker import PostProcess

    proc = PostProcess(str(tmp_path / "no-such-model"))
    with pytest.raises(RuntimeError, match="post-processing process failed"):
        proc.submit([], {"task": "arithmetic", "n": 1, "has_trace": False}, [], None, True)
    proc.close()
