"""Fan the chunks of a probe out over Ray workers, or run them in the driver.

Each worker holds one sampler (the checkpoint being probed) and the base model (for the
perplexity of the samples); the driver hands out chunks and writes each result as it arrives,
so a killed probe keeps every finished chunk. Sampling is keyed by problem id
(samplers/keyed.py): sample j of a problem is the same whatever its chunk, the number of
workers, the order in which chunks finish, or the round of an adaptive probe that drew it
(``job["first"]``, the index of the chunk's first sample).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import pandas as pd


class ChunkWorker:
    """Samples, verifies and base-scores chunks of problems for one checkpoint."""

    def __init__(self, policy_path: str, base_path: str, sampler: Mapping[str, Any]):
        from transformers import AutoModelForCausalLM

        from rlboundary.trainer.samplers import make_sampler

        kw = dict(sampler)
        self.sampler = make_sampler(kw.pop("name"), policy_path, **kw)
        if base_path == policy_path:
            self.base_model = self.sampler.model
        else:
            self.base_model = AutoModelForCausalLM.from_pretrained(base_path).eval()
        _check_same_vocab(self.sampler.tokenizer, base_path)

    def run(self, chunk_idx: int, records: Sequence, job: Mapping[str, Any]):
        """-> (per-problem rows, per-sample rows) for one chunk."""
        from rlboundary.tasks import TASKS
        from rlboundary.tasks.prompts import render
        from rlboundary.trainer.probe_rows import aggregate
        from rlboundary.trainer.rollout import score_samples
        from rlboundary.trainer.samplers.keyed import problem_key
        from rlboundary.trainer.scoring import score_nll

        task, n, s = TASKS.get(job["task"]), int(job["n"]), job["sampling"]
        first = int(job.get("first", 0))
        prompts = [render(task.template, r.problem) for r in records]
        batch = self.sampler.sample(prompts, n, max_new_tokens=int(s["max_new_tokens"]),
                                    temperature=float(s["temperature"]),
                                    top_p=float(s["top_p"]), seed=int(job["seed"]),
                                    keys=[problem_key(r.id) for r in records], first=first)
        samples = score_samples(task, records, batch, n, first=first)
        if self.base_model is self.sampler.model and float(s["temperature"]) == 1.0 \
                and float(s["top_p"]) == 1.0:
            # the base probing itself at T=1: the sampler's log-probs are the base's, no
            # second forward pass (they equal a teacher-forced pass: tests/test_samplers.py)
            samples["nll_base"] = -samples["logprob_sum"].to_numpy(float)
        else:
            nll, ntok = score_nll(self.base_model, self.sampler.tokenizer,
                                  [prompts[i // n] for i in range(len(batch))], batch.token_ids,
                                  batch_size=256)
            if (ntok != samples["n_tokens"].to_numpy()).any():
                raise RuntimeError("base-model scoring saw other response lengths than the "
                                   "sampler")
            samples["nll_base"] = nll
        return aggregate(samples, list(records), n, job["has_trace"]), samples


    def run_tagged(self, chunk_idx: int, records: Sequence, job: Mapping[str, Any]):
        """(chunk_idx, result): Ray hands results back in completion order."""
        return chunk_idx, self.run(chunk_idx, records, job)


def _check_same_vocab(tokenizer, base_path: str) -> None:
    from transformers import AutoTokenizer

    base_tok = AutoTokenizer.from_pretrained(base_path)
    if base_tok.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"the checkpoint's tokenizer differs from the base model's at "
                         f"{base_path}: base-model perplexity would be meaningless")


def run_chunks(worker_kw: Mapping[str, Any], jobs: list[tuple[int, Sequence, Mapping]],
               workers: int, on_result: Callable[[int, tuple[pd.DataFrame, pd.DataFrame]], None]
               ) -> None:
    """Run `jobs` [(chunk_idx, records, job)] and call on_result(chunk_idx, result) for each."""
    if not jobs:
        return
    if workers <= 1 or len(jobs) == 1:
        worker = ChunkWorker(**worker_kw)
        for i, records, job in jobs:
            on_result(i, worker.run(i, records, job))
        return
    _run_ray(worker_kw, jobs, min(workers, len(jobs)), on_result)


def _run_ray(worker_kw, jobs, workers: int, on_result) -> None:
    import ray
    import torch
    from ray.util import ActorPool

    gpus = 1 if torch.cuda.is_available() else 0
    if not ray.is_initialized():
        ray.init(num_cpus=max(workers, 1), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    Remote = ray.remote(num_cpus=1, num_gpus=gpus)(ChunkWorker)
    actors = [Remote.options(runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}).remote(
        **worker_kw) for _ in range(workers)]
    pool = ActorPool(actors)
    for job in jobs:
        pool.submit(lambda actor, args: actor.run_tagged.remote(*args), job)
    while pool.has_next():
        i, result = pool.get_next_unordered()
        on_result(i, result)
    for a in actors:
        ray.kill(a)
