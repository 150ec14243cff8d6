"""Benchmark: what a probe costs beside the sampler's own rate.

One process, the probe's workload (issue: 48 held-out problems x 256 samples on the tiny base,
chunks of 8 problems as the probe runner draws them): the time of each phase run one after
another (sampling, verification + per-sample rows, base-model scoring, aggregation), then the
probe's own worker (``fanout.ChunkWorker.run_many``, which overlaps a chunk's verification
and scoring with the next chunk's sampling on a second thread) on a checkpoint (a copy of
the base, so its samples are scored under the base) and on the base itself (T=1: the
sampler's log-probs are the base's, no scoring pass), against the sampler's own samples/s.

    python bench/bench_probe_cost.py                  # tiny base, 48 x 256, 1 torch thread
    python bench/bench_probe_cost.py --problems 16 --n 64 --threads 2 --json out.json

The target of issue 13 is a whole probe at >= 80% of the sampler's samples/s; the ``probe /
sampler`` row says where we are.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlboundary.fileio import write_text


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=48)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from transformers import AutoModelForCausalLM

    from rlboundary.cli import compose, plain
    from rlboundary.tasks.prompts import render
    from rlboundary.trainer.base_model import build_base
    from rlboundary.trainer.probe_rows import aggregate
    from rlboundary.trainer.probe_runner import load_dataset
    from rlboundary.trainer.rollout import score_samples
    from rlboundary.trainer.samplers import make_sampler
    from rlboundary.trainer.scoring import score_nll

    cfg = compose([])
    path = build_base(plain(cfg.base), cfg.cache_dir)
    task, test = load_dataset(cfg.data.name, plain(cfg.data), cfg.cache_dir, a.problems)
    s = cfg.sampling
    sampler = make_sampler("hf", path)
    base = AutoModelForCausalLM.from_pretrained(path).eval()   # scored as another model would be
    from rlboundary.tasks.verify_worker import ensure_worker

    ensure_worker()   # math-verify's worker start-up (~2 s) is not a per-probe cost
    t = {"sampling": 0.0, "verification": 0.0, "scoring": 0.0, "aggregation": 0.0}
    samples_total = 0
    for i in range(0, len(test), a.chunk):
        recs = test[i:i + a.chunk]
        prompts = [render(task.template, r.problem) for r in recs]
        t0 = time.perf_counter()
        batch = sampler.sample(prompts, a.n, max_new_tokens=int(s.max_new_tokens),
                               temperature=float(s.temperature), top_p=float(s.top_p),
                               seed=i // a.chunk)
        t1 = time.perf_counter()
        rows = score_samples(task, recs, batch, a.n)
        t2 = time.perf_counter()
        nll, _ = score_nll(base, sampler.tokenizer, [prompts[j // a.n] for j in range(len(batch))],
                           batch.token_ids, batch_size=128)
        t3 = time.perf_counter()
        rows["nll_base"] = nll
        aggregate(rows, list(recs), a.n, task.trace_check is not None)
        t4 = time.perf_counter()
        for key, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            t[key] += dt
        samples_total += len(batch)
    seq = sum(t.values())
    rate = {"sampler": samples_total / t["sampling"], "sequential": samples_total / seq}
    pipelined = {}
    for label, policy in (("checkpoint", "copy"), ("base itself", path)):
        seconds = _pipelined(path, policy, task, test, a, s)
        pipelined[label] = seconds
        rate[f"pipelined {label}"] = samples_total / seconds
    print(f"probe cost: {len(test)} problems x {a.n} samples, chunks of {a.chunk}, "
          f"{a.threads} torch thread(s) for sampling")
    print(f"{'phase (one after another)':<28}{'seconds':>9}{'share':>8}")
    for key, v in t.items():
        print(f"{key:<28}{v:>9.2f}{v / seq:>8.0%}")
    print(f"{'whole probe, sequential':<28}{seq:>9.2f}{1:>8.0%}")
    print(f"\n{'whole probe':<34}{'seconds':>9}{'samples/s':>11}{'/ sampler':>11}")
    print(f"{'sampler alone':<34}{t['sampling']:>9.2f}{rate['sampler']:>11.0f}{1:>11.0%}")
    print(f"{'sequential (checkpoint)':<34}{seq:>9.2f}{rate['sequential']:>11.0f}"
          f"{rate['sequential'] / rate['sampler']:>11.0%}")
    for label, sec in pipelined.items():
        r = rate[f"pipelined {label}"]
        print(f"{'pipelined, ' + label:<34}{sec:>9.2f}{r:>11.0f}{r / rate['sampler']:>11.0%}")
    print("pipelined = fanout.ChunkWorker.run_many: chunk i's verification and base scoring "
          "overlap chunk i+1's sampling (target >= 80% of the sampler's rate)")
    if a.json:
        write_text(a.json, json.dumps({"seconds": t, "samples": samples_total,
                                       "pipelined_seconds": pipelined,
                                       "samples_per_s": rate, "args": vars(a)}, indent=2))


def _pipelined(base: str, policy: str, task, test, a, s) -> float:
    """Wall seconds of the probe's own worker over every chunk; ``policy="copy"`` probes a
    copy of the base as a checkpoint (so its samples are scored under the base model)."""
    import shutil
    import tempfile

    from rlboundary.trainer.fanout import ChunkWorker

    with tempfile.TemporaryDirectory() as tmp:
        if policy == "copy":
            policy = shutil.copytree(base, f"{tmp}/checkpoint")
        worker = ChunkWorker(policy, base, {"name": "hf", "torch_threads": a.threads})
        job = dict(task=task.name, n=a.n, seed=0, has_trace=task.trace_check is not None,
                   sampling={"max_new_tokens": int(s.max_new_tokens),
                             "temperature": float(s.temperature), "top_p": float(s.top_p)})
        jobs = [(i, test[i * a.chunk:(i + 1) * a.chunk], job)
                for i in range((len(test) + a.chunk - 1) // a.chunk)]
        list(worker.run_many(jobs[:1]))   # warm-up: math-verify worker, first-call costs
        t0 = time.perf_counter()
        for _ in worker.run_many(jobs):
            pass
        seconds = time.perf_counter() - t0
        worker.close()
    return seconds


if __name__ == "__main__":
    main()
