"""The ``vllm`` sampler against vLLM itself: the vLLM lane of ``make test``.

vLLM cannot share an environment with verl 0.9.1 (vLLM's CPU build needs transformers>=5.16.1,
verl <5.11), so ``make test`` runs this module a second time in ``.venv-vllm`` (vllm-cpu and the
project, set up by the Makefile); in the main environment it is skipped. Everything runs the
session's tiny test base (head_dim 32, a shape vLLM's CPU attention has kernels for) in float32,
where vLLM's log-probs can be compared with a teacher-forced pass; the default ``dtype=auto``
runs bfloat16 on CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="vLLM lane only: make test runs this module in .venv-vllm")

# vLLM's CPU backend reserves this many GiB of KV cache per engine (its default is 4)
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

PROMPTS_N = 6


@pytest.fixture(scope="module")
def prompts():
    from rlboundary.commands import compose, plain
    from rlboundary.tasks import TASKS
    from rlboundary.tasks.prompts import render

    data = plain(compose([]).data)
    task = TASKS.get(data.pop("name"))
    return [render(task.template, r.problem) for r in task.load(**data)[:PROMPTS_N]]


@pytest.fixture(scope="module")
def engine(trained_base):
    from rlboundary.samplers import make_sampler

    sampler = make_sampler("vllm", trained_base, dtype="float32", max_model_len=256,
                           enforce_eager=True)
    yield sampler
    sampler.close()


@pytest.fixture(scope="module")
def reference(trained_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(trained_base, dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(trained_base)


def teacher_forced(reference, prompts, batch, temperature, top_p):
    from rlboundary.samplers.scoring import token_logprobs

    model, tok = reference
    return token_logprobs(model, tok, [prompts[i] for i in batch.prompt_index],
                          batch.token_ids, temperature=temperature, top_p=top_p)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9)])
def test_logprobs_equal_a_teacher_forced_pass_in_float32(engine, reference, prompts,
                                                         temperature, top_p):
    """vLLM's processed log-probs (after T and top-p) are the hf sampler's quantity."""
    batch = engine.sample(prompts, 8, max_new_tokens=96, temperature=temperature, top_p=top_p,
                          seed=3)
    assert engine.dtype == "float32" and batch.meta["dtype"] == "float32"
    lps, _ = teacher_forced(reference, prompts, batch, temperature, top_p)
    gap = max(float(np.abs(a - b).max()) for a, b in zip(batch.logprobs, lps) if len(a))
    assert sum(len(t) for t in batch.token_ids) > 500
    assert gap < 1e-3, f"largest log-prob gap {gap:.2e} nats"
    print(f"T={temperature} top_p={top_p}: largest log-prob gap {gap:.2e} nats")


def test_keyed_rounds_nest_into_one_call(engine, prompts):
    keys = [11, 22, 33, 44, 55, 66][:len(prompts)]
    kw = dict(max_new_tokens=48, temperature=1.0, top_p=1.0, seed=5, keys=keys)
    whole = engine.sample(prompts, 16, **kw)
    first, second = engine.sample(prompts, 8, **kw), engine.sample(prompts, 8, first=8, **kw)
    def rows(batch, p):
        return [batch.token_ids[i].tolist() for i in np.flatnonzero(batch.prompt_index == p)]

    for p in range(len(prompts)):
        assert rows(whole, p) == rows(first, p) + rows(second, p)


def test_entropy_mc_estimates_the_exact_entropy(engine, reference, prompts):
    """Mean of -logprob(sampled token) against the exact entropy at the same positions: their
    difference has mean 0 given the prefixes, so it must sit within 4 standard errors."""
    batch = engine.sample(prompts, 32, max_new_tokens=96, temperature=1.0, top_p=1.0, seed=9)
    _, ent = teacher_forced(reference, prompts, batch, 1.0, 1.0)
    d = np.concatenate(batch.entropies).astype(np.float64) - np.concatenate(ent)
    se = d.std(ddof=1) / np.sqrt(len(d))
    assert len(d) > 2000 and abs(d.mean()) < 4 * se, (d.mean(), se, len(d))
    print(f"entropy_mc - entropy: {d.mean():+.4f} nats (se {se:.4f}, {len(d)} tokens)")


def test_dtype_auto_is_resolved_by_vllms_rule(trained_base):
    from rlboundary.samplers import SAMPLERS

    cls = SAMPLERS.get("vllm")
    assert cls.resolved_dtype(trained_base, dtype="float32") == "float32"
    # vLLM runs a float32 checkpoint in bfloat16 on CPU unless told otherwise
    assert cls.resolved_dtype(trained_base, dtype="auto") == "bfloat16"
    assert cls.resolved_dtype(trained_base, engine_kwargs={"dtype": "float32"}) == "float32"


def _probe(base, run_dir, cache, sampler):
    cmd = [sys.executable, "-m", "rlboundary.cli", "probe", f"base={base}", f"run_dir={run_dir}",
           f"cache_dir={cache}", "progress=false", "probe.limit=60", "probe.chunk=30", "n=32",
           "sampling.max_new_tokens=96", "probe.seed=1", *sampler]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return pd.read_parquet(os.path.join(run_dir, "probes", "arithmetic", "step_00000000.parquet"))


def test_probe_with_vllm_matches_hf_within_sampling_error(trained_base, tmp_path):
    """The same model and problems probed under both samplers: per-problem pass@k differences
    average to zero within 4 standard errors (the draws are independent), and the provenance
    records the dtype vLLM drew in."""
    from rlboundary.probes.passk import pass_at_k
    from rlboundary.results.store import ProbeStore

    vl = _probe(trained_base, str(tmp_path / "vllm"), str(tmp_path / "cache_v"),
                ["sampler=vllm", "sampler.dtype=float32", "sampler.max_model_len=256",
                 "sampler.enforce_eager=true"])
    hf = _probe(trained_base, str(tmp_path / "hf"), str(tmp_path / "cache_h"), ["sampler=hf"])
    assert list(vl["problem_id"]) == list(hf["problem_id"]) and len(vl) == 60
    assert 0 < vl["c"].sum() < 60 * 32 and 0 < hf["c"].sum() < 60 * 32
    gaps = {}
    for k in (1, 4, 16):
        d = np.array([pass_at_k(32, int(a), k) - pass_at_k(32, int(b), k)
                      for a, b in zip(vl["c"], hf["c"])])
        se = d.std(ddof=1) / np.sqrt(len(d))
        gaps[k] = (d.mean(), se)
        assert abs(d.mean()) <= 4 * se + 1e-9, gaps
    prov = ProbeStore(str(tmp_path / "vllm"), "arithmetic", 0).provenance()
    assert prov["sampler"]["name"] == "vllm" and prov["sampler"]["drawn_dtype"] == "float32"
    assert ProbeStore(str(tmp_path / "hf"), "arithmetic", 0).provenance()[
        "sampler"]["drawn_dtype"] == "float32"
    metrics = [json.loads(x) for x in (tmp_path / "vllm" / "metrics.jsonl").read_text().splitlines()]
    assert "entropy_mc" in metrics[0] and "entropy" not in metrics[0]
    print("pass@k gaps vllm - hf (mean, se):", gaps)
