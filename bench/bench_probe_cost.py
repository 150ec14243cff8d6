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
import statistics
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
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)

    from transformers import AutoModelForCausalLM

    from rlboundary.commands import compose, plain
    from rlboundary.probing.inputs import load_dataset
    from rlboundary.probing.rows import aggregate
    from rlboundary.samplers import make_sampler
    from rlboundary.samplers.rollout import score_samples
    from rlboundary.samplers.scoring import score_nll
    from rlboundary.tasks.prompts import render
    from rlboundary.trainer.base_model import build_base

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
    runs = _pipelined(path, task, test, a, s)
    med = {k: statistics.median(v) for k, v in runs.items()}
    rate = {k: samples_total / v for k, v in med.items()}
    print(f"probe cost: {len(test)} problems x {a.n} samples, chunks of {a.chunk}, "
          f"{a.threads} torch thread(s) for sampling")
    print(f"{'phase (one after another)':<28}{'seconds':>9}{'share':>8}")
    for key, v in t.items():
        print(f"{key:<28}{v:>9.2f}{v / seq:>8.0%}")
    print(f"{'whole probe, sequential':<28}{seq:>9.2f}{1:>8.0%}")
    print(f"\nmedian of {a.repeats} interleaved runs   seconds  samples/s  / sampler")
    for key, sec in med.items():
        print(f"{key:<34}{sec:>9.2f}{rate[key]:>11.0f}{rate[key] / rate['sampler alone']:>11.0%}")
    print("the probe's worker (fanout.ChunkWorker.run_many) verifies and scores chunk i while "
          "chunk i+1 samples, on a thread (probe.post=thread, the default) or in a second "
          "process (probe.post=process; start-up excluded here); target >= 80% of the "
          "sampler's rate")
    if a.json:
        write_text(a.json, json.dumps({"sequential_seconds": t, "samples": samples_total,
                                       "runs_seconds": runs, "median_seconds": med,
                                       "samples_per_s": rate, "args": vars(a)}, indent=2))


def _pipelined(base: str, task, test, a, s) -> dict[str, list[float]]:
    """Wall seconds, ``a.repeats`` times interleaved (this machine's speed drifts): the
    sampler alone over every chunk, the probe's worker on a checkpoint (a copy of the base,
    so its samples are scored under the base model) and on the base itself (T=1: the
    sampler's log-probs are the base's, no scoring pass)."""
    import shutil
    import tempfile

    from rlboundary.probing.fanout import ChunkWorker

    job = dict(task=task.name, n=a.n, seed=0, has_trace=task.trace_check is not None,
               sampling={"max_new_tokens": int(s.max_new_tokens),
                         "temperature": float(s.temperature), "top_p": float(s.top_p)})
    jobs = [(i, test[i * a.chunk:(i + 1) * a.chunk], job)
            for i in range((len(test) + a.chunk - 1) // a.chunk)]
    out: dict[str, list[float]] = {"sampler alone": []}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = shutil.copytree(base, f"{tmp}/checkpoint")
        workers = {f"{key}, post={post}": ChunkWorker(
            policy, base, {"name": "hf", "torch_threads": a.threads}, post=post)
            for key, policy in (("probe, checkpoint", ckpt), ("probe, base itself", base))
            for post in ("thread", "process")}
        for w in workers.values():
            list(w.run_many(jobs[:1]))   # warm-up: the second process's start, first calls
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for _, recs, jb in jobs:
                workers["probe, base itself, post=thread"]._sample(recs, jb)
            out["sampler alone"].append(time.perf_counter() - t0)
            for key, w in workers.items():
                out.setdefault(key, [])
                t0 = time.perf_counter()
                for _ in w.run_many(jobs):
                    pass
                out[key].append(time.perf_counter() - t0)
        for w in workers.values():
            w.close()
    return out


if __name__ == "__main__":
    main()
