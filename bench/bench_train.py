"""Step time of the local engine for each of the six algorithms, by phase.

Trains each algorithm for a few steps from the default tiny base (built or reused from the
cache) with the default batch (32 prompts x 8 samples), probes off, and prints the median
seconds per step and per phase over the steps after the first two (Ray start-up and warm-up
excluded). Run from the repository root: `python bench/bench_train.py [--steps N]
[--algorithms ppo,grpo] [key=value ...]` (extra Hydra overrides go to every run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

from rlboundary.cli import main as cli
from rlboundary.fileio import write_text

PHASES = ("gen", "gen_baseline", "old_log_prob", "values", "adv", "update_critic",
          "update_actor")


def run(algorithm: str, steps: int, overrides: list[str], root: str) -> list[dict]:
    run_dir = os.path.join(root, algorithm)
    assert cli(["train", f"algorithm={algorithm}", f"run_dir={run_dir}",
                f"trainer.total_training_steps={steps}", "trainer.save_freq=0",
                "trainer.probe=off", "trainer.logger=[console]", "progress=false",
                *overrides]) == 0
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r for r in rows if r.get("kind") == "train"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--algorithms", default="ppo,grpo,rloo,reinforce_pp,remax,dapo")
    ap.add_argument("--json", help="also write {algorithm: {step, phases, gen_rounds}} here")
    args, overrides = ap.parse_known_args()
    table = []
    with tempfile.TemporaryDirectory(prefix="rlb-bench-train-") as root:
        for algo in args.algorithms.split(","):
            rows = run(algo, args.steps, overrides, root)[2:]
            med = {p: statistics.median(r.get(f"timing_s/{p}", 0.0) for r in rows)
                   for p in PHASES}
            table.append((algo, statistics.median(r["timing_s/step"] for r in rows), med,
                          statistics.mean(r["train/gen_rounds"] for r in rows)))
    print(f"\nlocal engine, seconds per step (median of steps 3..{args.steps}):")
    print(f"{'algorithm':13s} {'step':>6s} " + " ".join(f"{p:>13s}" for p in PHASES)
          + "  gen rounds")
    for algo, step, med, rounds in table:
        print(f"{algo:13s} {step:6.2f} " + " ".join(f"{med[p]:13.2f}" for p in PHASES)
              + f"  {rounds:10.1f}")
    if args.json:
        write_text(args.json, json.dumps(
            {algo: {"step": step, "phases": med, "gen_rounds": rounds}
             for algo, step, med, rounds in table}, indent=1))


if __name__ == "__main__":
    main()
