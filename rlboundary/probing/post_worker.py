"""A probe's second stage (verification, base-model scoring, aggregation) in its own process.

Why: on CPU with a small model both stages are mostly Python dispatching small torch ops, so two
threads of one interpreter take turns on the GIL instead of using two cores (measured on the
tiny base, 48 x 256 samples: the threaded pipeline ran at ~70% of the sampler's rate). Here the
second stage runs in a fresh interpreter (``python -c "from rlboundary.probing.post_worker import
serve; serve()"``, as the verifier's workers do, so no caller's ``__main__`` is re-imported)
holding its own copy of the base model; on GPU the threaded stage is used instead (CUDA kernels
release the GIL, and a second copy of the base model would cost GPU memory).

Protocol: length-prefixed pickles over the child's stdin/stdout. The parent strictly alternates
(:meth:`PostProcess.submit` one chunk, then :meth:`PostProcess.result` before the next submit),
so neither side ever blocks writing while the other is writing too. The child exits when its
stdin closes or its parent dies.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_COMMAND = "from rlboundary.probing.post_worker import serve; serve()"
_HEAD = struct.Struct("<Q")


def _send(fh, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    fh.write(_HEAD.pack(len(data)))
    fh.write(data)
    fh.flush()


def _recv(fh):
    head = fh.read(_HEAD.size)
    if len(head) < _HEAD.size:
        return None
    (size,) = _HEAD.unpack(head)
    data = fh.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def finish_chunk(records, job, prompts, batch, reuse_logprobs: bool, base_model=None,
                 tokenizer=None):
    """Verification, the base model's NLL and the per-problem rows of one sampled chunk:
    ``-> (per-problem rows, per-sample rows)``. ``reuse_logprobs``: the sampler is the base
    model at T=1, top-p 1, so its log-probabilities are the base's (no scoring pass; they
    equal a teacher-forced pass: tests/test_samplers.py)."""
    from rlboundary.probing.rows import aggregate
    from rlboundary.samplers.rollout import score_samples
    from rlboundary.samplers.scoring import score_nll
    from rlboundary.tasks import TASKS

    task, n = TASKS.get(job["task"]), int(job["n"])
    samples = score_samples(task, records, batch, n, first=int(job.get("first", 0)))
    if reuse_logprobs:
        samples["nll_base"] = -samples["logprob_sum"].to_numpy(float)
    else:
        nll, ntok = score_nll(base_model, tokenizer, [prompts[i // n] for i in range(len(batch))],
                              batch.token_ids, batch_size=128)  # sorted rows: little padding
        if (ntok != samples["n_tokens"].to_numpy()).any():
            raise RuntimeError("base-model scoring saw other response lengths than the sampler")
        samples["nll_base"] = nll
    return aggregate(samples, list(records), n, job["has_trace"]), samples


def _watch_parent(parent: int) -> None:
    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def serve() -> None:
    """The child's loop: ``("init", base_path)`` loads the base model, then each ``("run",
    args)`` answers ``("ok", result)`` or ``("error", traceback)``."""
    inp, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    _watch_parent(int(os.environ.get("RLBOUNDARY_POST_PARENT", os.getppid())))
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(int(os.environ.get("RLBOUNDARY_POST_THREADS", "1")))
    model = tok = None
    while (msg := _recv(inp)) is not None:
        kind, payload = msg
        try:
            if kind == "init":
                model = AutoModelForCausalLM.from_pretrained(payload).eval()
                tok = AutoTokenizer.from_pretrained(payload)
                reply = ("ok", None)
            else:
                reply = ("ok", finish_chunk(*payload, base_model=model, tokenizer=tok))
        except Exception:  # noqa: BLE001  (sent back whole to the parent)
            reply = ("error", traceback.format_exc())
        _send(out, reply)


class PostProcess:
    """The parent's handle on one child: ``submit`` a chunk, then ``result`` before the next.

    Raises RuntimeError with the child's traceback (or its stderr, when it died) on failure.
    """

    def __init__(self, base_path: str, threads: int = 1):
        env = dict(os.environ, RLBOUNDARY_POST_PARENT=str(os.getpid()),
                   RLBOUNDARY_POST_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
                   PYTHONPATH=os.pathsep.join([_ROOT] + [p for p in [os.environ.get(
                       "PYTHONPATH")] if p]))
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen([sys.executable, "-c", _COMMAND], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, cwd=_ROOT,
                                     env=env, close_fds=True)
        self.pending: str | None = None
        self._send_msg(("init", base_path))
        self.pending = "init"

    def _send_msg(self, msg) -> None:
        try:
            _send(self.proc.stdin, msg)
        except (BrokenPipeError, OSError):
            self._died()

    def _drain(self) -> None:
        """Read the answer still owed: the init's (its error is raised) or that of a chunk
        whose caller stopped waiting (dropped)."""
        kind = self.pending
        if kind is None:
            return
        try:
            self.result()
        except RuntimeError:
            if kind == "init":
                raise

    def submit(self, records, job, prompts, batch, reuse_logprobs: bool) -> None:
        """Hand one sampled chunk to the child (returns at once)."""
        self._drain()
        self._send_msg(("run", (records, job, prompts, batch, reuse_logprobs)))
        self.pending = "run"

    def result(self):
        """The child's answer to the last submit (blocks until it is there)."""
        reply = _recv(self.proc.stdout)
        self.pending = None
        if reply is None:
            self._died()
        if reply[0] == "error":
            raise RuntimeError(f"the probe's post-processing process failed:\n{reply[1]}")
        return reply[1]

    def _died(self):
        self.proc.wait(timeout=10)
        self.log.seek(0)
        tail = self.log.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"the probe's post-processing process exited "
                           f"(code {self.proc.returncode}); it wrote:\n{tail}")

    def close(self) -> None:
        """Close the child's stdin (it exits) and reap it."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()
