"""Build the default tiny base model from scratch and print what it cost and what it can do.

The build time used to be a timed assertion in the test suite (a slow CI machine could fail it
and it cost half the suite's time); here it is printed, never asserted. The build goes to a
fresh temporary cache so nothing cached is reused. Prints parameters, seconds, final loss and
the held-out accuracy by difficulty (16 samples per problem at T=1).
Run from the repository root: `python bench/bench_base_build.py [--threads N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from rlboundary.commands import compose, plain
from rlboundary.samplers import make_sampler
from rlboundary.samplers.rollout import accuracy_by_difficulty, sample_and_score
from rlboundary.tasks import TASKS
from rlboundary.trainer.base_model import build_base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: config)")
    args = ap.parse_args()
    overrides = [f"base.pretrain.torch_threads={args.threads}"] if args.threads else []
    cfg = compose(overrides)
    with tempfile.TemporaryDirectory(prefix="rlb-bench-base-") as cache:
        path = build_base(plain(cfg.base), cache, progress=False)
        with open(os.path.join(path, "build_info.json")) as fh:
            info = json.load(fh)
        data = plain(cfg.data)
        task = TASKS.get(data.pop("name"))
        records = [r for r in task.load(**data) if r.split == "test"]
        sampler = make_sampler("hf", path, device="cpu")
        scored = sample_and_score(sampler, task, records, n=16, seed=0, progress=False,
                                  **plain(cfg.sampling))
    threads = cfg.base.pretrain.torch_threads
    print(f"tiny base: {info['params']:,} parameters, {cfg.base.pretrain.steps} steps, "
          f"{threads} threads, built in {info['seconds']:.1f} s, final loss "
          f"{info['final_loss']:.3f}")
    print(accuracy_by_difficulty(scored, records).to_string(
        index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
