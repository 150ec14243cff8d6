"""Benchmark: what a probe costs beside the sampler's own rate.

One process, the probe's workload (issue: 48 held-out problems x 256 samples on the tiny base,
chunks of 8 problems as the probe runner draws them): the time of each phase of
``fanout.ChunkWorker.run`` (sampling, verification + per-sample rows, base-model scoring,
aggregation) and the whole probe's samples/s against the sampler's alone.

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
                           batch.token_ids, batch_size=256)
        t3 = time.perf_counter()
        rows["nll_base"] = nll
        aggregate(rows, list(recs), a.n, task.trace_check is not None)
        t4 = time.perf_counter()
        for key, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            t[key] += dt
        samples_total += len(batch)
    whole = sum(t.values())
    rate = {"sampler": samples_total / t["sampling"], "probe": samples_total / whole}
    print(f"probe cost: {len(test)} problems x {a.n} samples, chunks of {a.chunk}, "
          f"{a.threads} torch thread(s)")
    print(f"{'phase':<14}{'seconds':>9}{'share':>8}")
    for key, v in t.items():
        print(f"{key:<14}{v:>9.2f}{v / whole:>8.0%}")
    print(f"{'whole probe':<14}{whole:>9.2f}{1:>8.0%}")
    print(f"samples/s: sampler {rate['sampler']:.0f}, whole probe {rate['probe']:.0f}; "
          f"probe / sampler = {rate['probe'] / rate['sampler']:.0%} (target >= 80%)")
    if a.json:
        write_text(a.json, json.dumps({"seconds": t, "samples": samples_total,
                                       "samples_per_s": rate, "args": vars(a)}, indent=2))


if __name__ == "__main__":
    main()
