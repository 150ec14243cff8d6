"""Step time of the local engine against TRL's GRPOTrainer on the same GRPO workload.

Both train the tiny base (built or reused from the cache) on the arithmetic task's training
prompts with the same reward (`tasks.verify.compute_score` through the task), in fp32 on CPU
with the same torch thread count: 32 prompts x 8 samples per RL step, at most 56 new tokens at
T=1, two optimizer updates of 128 samples per RL step, one pass (no PPO epochs), no KL term.
One RL step is one generation of 256 samples plus its two updates: for TRL that is two trainer
steps (`steps_per_generation=2`), which also recomputes the old log-probs, as the local engine
does by default; the local engine is also timed with verl's `bypass_mode` (the sampler's
log-probs as the old ones). Medians over the steps after the first two (warm-up) are printed
with their range and the ratios. TRL is a bench-only dependency:
`pip install -e ".[bench]"`.

Run from the repository root: `python bench/bench_trl.py [--steps 8] [--threads 1]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import tempfile
import time

PROMPTS, N, MAX_NEW, UPDATE = 32, 8, 56, 128


def base_model() -> str:
    from rlboundary.commands import build_base, compose

    return build_base(compose(["progress=false"]), {})


def task_rows():
    from rlboundary.commands import compose, plain
    from rlboundary.tasks import TASKS

    cfg = compose([])
    data = plain(cfg.data)
    task = TASKS.get(data.pop("name"))
    return task, [r for r in task.load(cache_dir=cfg.cache_dir, **data) if r.split == "train"]


def run_local(steps: int, threads: int, bypass: bool) -> list[float]:
    """Seconds per RL step of `rlboundary train` (its own timing_s/step, Ray start excluded);
    ``bypass``: verl's ``algorithm.rollout_correction.bypass_mode`` (no old log-prob pass)."""
    from rlboundary.cli import main as cli

    with tempfile.TemporaryDirectory(prefix="rlb-bench-trl-") as run_dir:
        assert cli(["train", "algorithm=grpo", f"run_dir={run_dir}", "progress=false",
                    f"trainer.total_training_steps={steps}", "trainer.save_freq=0",
                    "trainer.probe=off", "trainer.logger=[console]", "trainer.track_kl=false",
                    f"trainer.threads={threads}", f"data.train_batch_size={PROMPTS}",
                    f"rollout.n={N}", f"rollout.response_length={MAX_NEW}",
                    f"actor.ppo_mini_batch_size={UPDATE // N}", "actor.ppo_epochs=1",
                    f"algorithm.rollout_correction.bypass_mode={str(bypass).lower()}"]) == 0
        with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
            rows = [json.loads(x) for x in fh if x.strip()]
    return [r["timing_s/step"] for r in rows if r.get("kind") == "train"]


def run_trl(steps: int, threads: int) -> list[float]:
    """Seconds per RL step of TRL's GRPOTrainer (two trainer steps per generation)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from rlboundary.tasks.prompts import render
    from rlboundary.tasks.verify import compute_score

    torch.set_num_threads(threads)
    path = base_model()
    task, rows = task_rows()
    data = Dataset.from_list([{"prompt": render(task.template, r.problem), "gold": r.answer}
                              for r in rows])

    def reward(completions, gold, **_):  # what the local engine's reward step calls
        return [float(compute_score(task.name, c, g)["score"]) for c, g in zip(completions, gold)]

    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="rlb-bench-trl-") as out:
        cfg = GRPOConfig(
            output_dir=out, use_cpu=True, bf16=False, fp16=False, report_to=[],
            per_device_train_batch_size=UPDATE, steps_per_generation=PROMPTS * N // UPDATE,
            num_generations=N, max_completion_length=MAX_NEW, temperature=1.0, top_p=1.0,
            num_iterations=1, beta=0.0, learning_rate=1e-5, max_steps=2 * steps,
            save_strategy="no", logging_steps=1, dataloader_num_workers=0, seed=0,
            disable_tqdm=True)
        trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(path),
                              processing_class=AutoTokenizer.from_pretrained(path),
                              reward_funcs=reward, args=cfg, train_dataset=data,
                              callbacks=[Clock()])
        start = time.perf_counter()
        trainer.train()
    marks = [start] + ends
    per_update = [b - a for a, b in itertools.pairwise(marks)]
    return [per_update[i] + per_update[i + 1] for i in range(0, len(per_update) - 1, 2)]


def _stats(xs: list[float]) -> str:
    xs = xs[2:]
    return f"{statistics.median(xs):6.2f} s  ({min(xs):.2f}-{max(xs):.2f}, {len(xs)} steps)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="RL steps per engine (2 are warm-up)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the per-step seconds to this file")
    args = ap.parse_args()
    trl = run_trl(args.steps, args.threads)
    local = run_local(args.steps, args.threads, bypass=False)
    bypass = run_local(args.steps, args.threads, bypass=True)
    med = lambda xs: statistics.median(xs[2:])
    print(f"\nGRPO, {PROMPTS} prompts x {N} samples, <= {MAX_NEW} new tokens, 2 updates of "
          f"{UPDATE}, fp32, {args.threads} thread(s); seconds per RL step, median of steps "
          f"3..{args.steps}:")
    print(f"  TRL GRPOTrainer                       {_stats(trl)}")
    print(f"  rlboundary local                      {_stats(local)}  TRL / local "
          f"{med(trl) / med(local):.2f}x")
    print(f"  rlboundary local, bypass_mode=true    {_stats(bypass)}  TRL / local "
          f"{med(trl) / med(bypass):.2f}x")
    if args.json:
        from rlboundary.fileio import write_text

        write_text(args.json, json.dumps({"trl": trl, "local": local, "bypass": bypass},
                                         indent=1))


if __name__ == "__main__":
    main()
