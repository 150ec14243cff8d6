"""Fan the chunks of a probe out over Ray workers, or run them in the driver.

Each worker holds one sampler (the checkpoint being probed) and the base model (for the
perplexity of the samples), the latter in a second process or thread that verifies and scores
one chunk while the next samples; the driver hands out chunks and writes each result as it arrives,
so a killed probe keeps every finished chunk. Sampling is keyed by problem id
(samplers/keyed.py): sample j of a problem is the same whatever its chunk, the number of
workers, the order in which chunks finish, or the round of an adaptive probe that drew it
(``job["first"]``, the index of the chunk's first sample).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd


def worker_key(policy_path: str, base_path: str, sampler: Mapping[str, Any], post: str):
    """What makes two ChunkWorkers interchangeable (a kept one is reused when this matches)."""
    return policy_path, base_path, repr(sorted(dict(sampler).items())), post


class ChunkWorker:
    """Samples, verifies and base-scores chunks of problems for one checkpoint.

    Two stages per chunk: sampling (the calling thread) and the rest: verification, the base
    model's scoring and aggregation (post_worker.finish_chunk). :meth:`run_many` runs chunk
    i's second stage while chunk i+1 samples, so a probe costs little more than its sampling
    (bench/bench_probe_cost.py). ``post``: where the second stage runs, ``"process"`` (a
    child interpreter with its own base model: probing/post_worker.py), ``"thread"`` (a
    helper thread here; ``"auto"``), or ``"inline"`` (after each chunk's sampling, no
    overlap: a probe beside training keeps to its share of the cores). The process avoids
    the GIL, which the two stages' small ops share on CPU, but its start-up (~3-10 s: torch,
    transformers, the base model) waits on the first chunk: on the tiny base it paid off only
    in long probes (bench/bench_probe_cost.py), so it is opt-in.
    """

    def __init__(self, policy_path: str, base_path: str, sampler: Mapping[str, Any],
                 post: str = "auto"):
        from rlboundary.samplers import make_sampler

        if post not in ("auto", "thread", "process", "inline"):
            raise ValueError(f"probe.post must be auto, thread, process or inline, got {post!r}")
        self.key = worker_key(policy_path, base_path, sampler, post)
        # the base scores the samples with the sampler's own model when it holds it in-process
        # (hf); vLLM's engine has no teacher-forced pass, so the base is loaded beside it
        self.same_model = policy_path == base_path
        kw = dict(sampler)
        self.sampler = make_sampler(kw.pop("name"), policy_path, **kw)
        self.same_model = self.same_model and getattr(self.sampler, "model", None) is not None
        on_cpu = getattr(getattr(self.sampler, "device", None), "type", "cuda") == "cpu"
        self.mode = "thread" if post == "auto" else post
        if on_cpu and self.mode != "inline" and getattr(self.sampler, "torch_threads", 0) is None:
            import torch

            # the second stage takes a core of its own: sampling keeps to the others
            self.sampler.torch_threads = max(1, torch.get_num_threads() - 1)
        if self.mode == "process":
            from rlboundary.probing.post_worker import PostProcess

            self._proc = PostProcess(base_path)  # loads the base while we check the vocab
        else:
            self._start_thread(base_path)
        _check_same_vocab(self.sampler.tokenizer, base_path)

    def _start_thread(self, base_path: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from transformers import AutoModelForCausalLM

        from rlboundary.tasks.verify_worker import prelaunch

        if self.mode == "thread":
            self._post = ThreadPoolExecutor(1, thread_name_prefix="rlboundary-probe-post")
            self._post.submit(prelaunch)  # a math-verify worker of the pool warms up meanwhile
        else:
            prelaunch()
        self.base_model = self.sampler.model if self.same_model else \
            AutoModelForCausalLM.from_pretrained(base_path).eval()

    def run(self, chunk_idx: int, records: Sequence, job: Mapping[str, Any]):
        """-> (per-problem rows, per-sample rows) for one chunk."""
        return next(iter(self.run_many([(chunk_idx, records, job)])))[1]

    def run_many(self, jobs: Sequence[tuple[int, Sequence, Mapping[str, Any]]]):
        """Yield ``(chunk_idx, result)`` for each job in order, chunk i's verification and
        scoring running while chunk i+1 samples (at most one chunk waits)."""
        pending = None
        for i, records, job in jobs:
            args = (records, job, *self._sample(records, job), self._reuse(job))
            if pending is not None:
                yield pending, self._collect()
            self._hand_over(args)
            pending = i
        if pending is not None:
            yield pending, self._collect()

    def _reuse(self, job: Mapping[str, Any]) -> bool:
        """The base probing itself at T=1, top-p 1: the sampler's log-probs are the base's."""
        s = job["sampling"]
        return self.same_model and float(s["temperature"]) == 1.0 and float(s["top_p"]) == 1.0

    def _hand_over(self, args) -> None:
        from rlboundary.probing.post_worker import finish_chunk

        if self.mode == "process":
            self._proc.submit(*args)
            return
        kw = dict(base_model=self.base_model, tokenizer=self.sampler.tokenizer)
        if self.mode == "thread":
            self._fut = self._post.submit(finish_chunk, *args, **kw)
        else:
            self._done = finish_chunk(*args, **kw)

    def _collect(self):
        if self.mode == "process":
            return self._proc.result()
        return self._fut.result() if self.mode == "thread" else self._done

    def _sample(self, records: Sequence, job: Mapping[str, Any]):
        from rlboundary.samplers.keyed import problem_key
        from rlboundary.samplers.tokens import as_chat
        from rlboundary.tasks import TASKS
        from rlboundary.tasks.prompts import render

        task, s = TASKS.get(job["task"]), job["sampling"]
        prompts = [render(task.template, r.problem) for r in records]
        if job.get("chat_template") == "model":  # the probed model's own template
            prompts = as_chat(self.sampler.tokenizer, prompts)
        batch = self.sampler.sample(prompts, int(job["n"]),
                                    max_new_tokens=int(s["max_new_tokens"]),
                                    temperature=float(s["temperature"]),
                                    top_p=float(s["top_p"]), seed=int(job["seed"]),
                                    keys=[problem_key(r.id) for r in records],
                                    first=int(job.get("first", 0)))
        return prompts, batch

    def run_tagged(self, chunk_idx: int, records: Sequence, job: Mapping[str, Any]):
        """(chunk_idx, result): Ray hands results back in completion order."""
        return chunk_idx, self.run(chunk_idx, records, job)

    def close(self) -> None:
        """Stop the second stage's process or thread (a process takes its own math-verify
        workers with it; a thread's are the pool's, kept for the next probe)."""
        if self.mode == "process":
            self._proc.close()
        elif self.mode == "thread":
            self._post.shutdown(wait=True)
        if hasattr(self.sampler, "close"):  # an engine with processes of its own (vllm)
            self.sampler.close()


#: The driver's worker kept between run_chunks calls inside :func:`reuse_workers` (an
#: adaptive probe calls run_chunks once per round; reloading the models each time is waste).
_KEPT: dict[str, Any] = {"on": False, "worker": None}


@contextlib.contextmanager
def reuse_workers():
    """Within this block the driver keeps its ChunkWorker between run_chunks calls for the
    same checkpoint and sampler; it is closed (and its models freed) on exit."""
    _KEPT["on"] = True
    try:
        yield
    finally:
        _KEPT["on"] = False
        if _KEPT["worker"] is not None:
            _KEPT["worker"].close()
        _KEPT["worker"] = None


def _driver_run(worker_kw: Mapping[str, Any], jobs, on_result) -> None:
    key = worker_key(worker_kw["policy_path"], worker_kw["base_path"], worker_kw["sampler"],
                     worker_kw.get("post", "auto"))
    worker = _KEPT["worker"] if _KEPT["on"] else None
    if worker is None or worker.key != key:
        if worker is not None:
            worker.close()
        worker = ChunkWorker(**worker_kw)
    try:
        for i, result in worker.run_many(jobs):
            on_result(i, result)
    finally:
        if _KEPT["on"]:
            _KEPT["worker"] = worker
        else:
            worker.close()


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
        _driver_run(worker_kw, jobs, on_result)
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
