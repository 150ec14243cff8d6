"""``hf`` sampler: our own KV-cached decoding loop over a transformers causal LM (CPU or GPU).

Why not ``model.generate``: probing pass@k up to k=256 at every checkpoint means drawing
hundreds of completions per prompt from a tiny model, where per-step overhead (logits
processors, stopping criteria, cache concatenation, re-encoding the prompt for every sample)
dominates. Here each prompt is prefilled ONCE, its KV cache is copied to its ``n`` rows, and the
``(prompts x n)`` batch is stepped together:

* prompts of different lengths are left-padded; pad keys are masked and position ids count
  real tokens only, so every row sees exactly what an unpadded forward pass would;
* Llama-family models (llama, mistral, qwen2) decode through :class:`~rlboundary.samplers.steppers.FastLlama`: a
  preallocated KV cache (no per-step ``torch.cat``), fused QKV and gate/up matmuls, and no
  per-step mask building; any other causal LM falls back to :class:`HFStepper`, the
  model's own forward with a ``DynamicCache``;
* finished rows are pruned from the batch (and cache) once enough of them have stopped;
* sampling is temperature + top-p via an exponential race on ``(rows, V)`` probabilities with a
  seeded ``torch.Generator``; ``T == 0`` is greedy.

Per token we record the log-probability of the sampled token and the exact entropy (nats) of
the distribution sampled from: ``softmax(logits / T)``, truncated to the top-p nucleus and
renormalised when ``top_p < 1`` (``tokens.dist_stats``), the same quantity vLLM returns as
processed logprobs, so ``logprob_sum`` means one thing whichever sampler drew the samples.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from rlboundary.samplers import keyed
from rlboundary.samplers.api import SAMPLERS, SampleBatch, decode_responses
from rlboundary.samplers.steppers import FastLlama, HFStepper
from rlboundary.samplers.tokens import dist_stats, encode_prompts, left_pad

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[dtype]


@contextlib.contextmanager
def _num_threads(n: int | None):
    """Set torch's intra-op threads for the duration of a call only (the setting is global)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _pick(logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator,
          u: torch.Tensor | None = None):
    """Sample one token per row of ``logits (R, V)``: ``-> (tok (R,), logprob (R,), entropy (R,))``.

    The distribution is :func:`~rlboundary.samplers.tokens.dist_stats`'s: ``softmax(logits/T)``
    truncated to its top-p nucleus and renormalised; the recorded log-probability and entropy
    are of that same distribution (what vLLM reports as processed logprobs). Inverse-CDF
    sampling with one uniform per row (much cheaper than one random number per vocabulary
    entry); ``searchsorted(right=True)`` never lands on a zero-probability token. ``u (R,)``:
    the rows' uniforms (keyed sampling, :mod:`.keyed`); default: drawn from ``gen``.
    """
    lp, p, ent = dist_stats(logits, temperature, top_p)
    if not temperature or temperature <= 0:
        tok = logits.argmax(-1)
    else:
        if u is None:
            u = torch.rand((p.shape[0], 1), generator=gen, device=p.device)
        else:  # float64 -> float32 may round up to 1.0, which would pick past the last token
            u = u.to(p.dtype).clamp_(max=1.0 - 2.0 ** -24)[:, None]
        cdf = p.cumsum(-1)
        u = u * cdf[:, -1:]
        tok = torch.searchsorted(cdf, u, right=True).clamp_(max=p.shape[-1] - 1)[:, 0]
    return tok, lp.gather(-1, tok[:, None])[:, 0], ent


@SAMPLERS.register("hf")
class HFSampler:
    """Batched, KV-cached sampling from a transformers causal LM. See the module docstring.

    ``batch_size``: rows (prompt x sample pairs) per decoding batch; bounds memory. A prompt is
    prefilled once per batch it appears in (exactly once when ``batch_size >= n``).
    ``prune_below``: drop finished rows once the live fraction falls under this (0 = never).
    ``fast_path``: "auto" (Llama-family fast decoder when supported), true, or false.
    ``stop_token_ids``: extra stop tokens besides EOS; ``ignore_eos``: do not stop at EOS.
    """

    entropy_kind = "exact"

    @staticmethod
    def resolved_dtype(model_path: str | None = None, *, dtype: str | None = "auto",
                       device: str | None = "auto", **_ignored) -> str:
        """The dtype samples will be drawn in (``"float32"``...), without loading the model:
        ``auto`` is bfloat16 on CUDA, float32 on CPU. Raises KeyError for a dtype not in
        float32, bfloat16, float16."""
        return str(_resolve_dtype(dtype, _resolve_device(device))).removeprefix("torch.")

    def __init__(self, model_path: str | None = None, *, model=None, tokenizer=None,
                 batch_size: int = 1024, device: str | None = "auto", dtype: str | None = "auto",
                 torch_threads: int | None = None, fast_path="auto", prune_below: float = 0.5,
                 stop_token_ids: Sequence[int] | None = None, ignore_eos: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if model is None:
            if model_path is None:
                raise ValueError("HFSampler needs model_path or a model object")
            self.device = _resolve_device(device)
            model = AutoModelForCausalLM.from_pretrained(
                model_path, dtype=_resolve_dtype(dtype, self.device)).to(self.device)
        else:
            self.device = next(model.parameters()).device if device in (None, "auto") else \
                torch.device(device)
            model = model.to(self.device)
        self.model = model.eval()
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(
            model_path)
        self.batch_size, self.torch_threads, self.prune_below = int(batch_size), torch_threads, \
            float(prune_below)
        eos = self.tokenizer.eos_token_id
        if ignore_eos:  # benchmarking: every row runs to max_new_tokens
            eos = None
        self.stop_ids = sorted(set(stop_token_ids or []) | ({eos} if eos is not None else set()))
        if fast_path in (True, "true") and not FastLlama.supports(model):
            raise ValueError(f"fast_path=true but {type(model).__name__} is not supported")
        self.fast = fast_path in (True, "true") or (fast_path == "auto" and FastLlama.supports(
            model))

    def sample(self, prompts: Sequence[str], n: int, *, max_new_tokens: int,
               temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
               keys: Sequence[int] | None = None, first: int = 0) -> SampleBatch:
        """Draw ``n`` samples for each prompt; returns a prompt-major :class:`SampleBatch`.

        ``keys`` (one int per prompt, e.g. :func:`.keyed.problem_key` of its id): keyed
        sampling, where sample ``first + j`` of a prompt depends only on ``(seed, key, first +
        j)``, not on the batch (:mod:`.keyed`); two calls with ``first=0, n=16`` and ``first=16,
        n=16`` give the 32 samples of one call with ``n=32``. Without keys one generator
        seeded with ``seed`` serves the whole call (training rollouts).
        """
        enc = encode_prompts(self.tokenizer, prompts)
        if any(len(p) == 0 for p in enc):
            raise ValueError("empty prompt and no BOS token: nothing to condition on")
        S = len(enc) * n
        toks, lps, ents = [None] * S, [None] * S, [None] * S
        stops = np.zeros(S, dtype=bool)
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        if keys is not None and len(keys) != len(enc):
            raise ValueError(f"{len(keys)} keys for {len(enc)} prompts")
        with _num_threads(self.torch_threads), torch.inference_mode():
            stepper = FastLlama(self.model) if self.fast else HFStepper(self.model)
            for pids, m, j0 in self._plan([len(e) for e in enc], n):
                rk = None if keys is None else keyed.row_keys(
                    seed, [keys[p] for p in pids], [range(first + j0, first + j0 + m)] * len(pids),
                    device=self.device)
                out = self._decode(stepper, [enc[p] for p in pids], m, max_new_tokens,
                                   temperature, top_p, gen, rk)
                rows = [p * n + j0 + j for p in pids for j in range(m)]
                for r, (t, lp, en, st) in zip(rows, out):
                    toks[r], lps[r], ents[r], stops[r] = t, lp, en, st
        return SampleBatch(
            prompt_index=np.repeat(np.arange(len(enc)), n),
            token_ids=toks, texts=decode_responses(self.tokenizer, toks),
            finish_reasons=["stop" if s else "length" for s in stops],
            logprobs=lps, entropies=ents,
            meta={"sampler": "hf", "fast_path": self.fast, "temperature": temperature,
                  "top_p": top_p, "seed": seed, "max_new_tokens": max_new_tokens,
                  "keyed": keys is not None, "first": first, "dtype": self.dtype})

    def _plan(self, lengths: list[int], n: int):
        """Batches as ``(prompt ids, m samples each, first sample index)``: a grid of prompts.

        Prompts are taken in length order so a batch pads little; ``n > batch_size`` splits a
        prompt's samples over several batches (it is then prefilled once per batch).
        """
        order = [int(p) for p in np.argsort(lengths, kind="stable")]
        if n <= self.batch_size:
            per = max(1, self.batch_size // n)
            for s in range(0, len(order), per):
                yield order[s : s + per], n, 0
        else:
            for p in order:
                for j0 in range(0, n, self.batch_size):
                    yield [p], min(self.batch_size, n - j0), j0

    def _decode(self, stepper, prompts, m, max_new, temperature, top_p, gen, row_keys=None):
        """Decode ``m`` samples of each of ``u`` prompts (token lists); rows are prompt-major.
        ``row_keys (u*m,)``: keyed sampling (:mod:`.keyed`), else ``gen``.

        ``-> [(ids, logprobs, entropies, stopped)]`` for the ``u * m`` rows.
        """
        dev = self.device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids, mask = left_pad(prompts, pad)
        ids, mask = ids.to(dev), mask.to(dev)
        R = len(prompts) * m
        out_tok = torch.full((R, max_new), pad, dtype=torch.long, device=dev)
        out_lp = torch.zeros((R, max_new), dtype=torch.float32, device=dev)
        out_ent = torch.zeros((R, max_new), dtype=torch.float32, device=dev)
        stop_ids = torch.tensor(self.stop_ids or [-1], device=dev)
        logits = stepper.prefill(ids, mask, m, max_new)
        pos = mask.sum(1).repeat_interleave(m)  # next position id = real prompt tokens
        live = torch.arange(R, device=dev)  # output row of each batch row
        done = torch.zeros(R, dtype=torch.bool, device=dev)
        for t in range(max_new):
            u = None if row_keys is None else keyed.uniforms(row_keys[live], t)
            tok, lp, ent = _pick(logits, temperature, top_p, gen, u)
            out_tok[live, t], out_lp[live, t], out_ent[live, t] = tok, lp, ent
            done |= torch.isin(tok, stop_ids)
            if t == max_new - 1:
                break
            # Host syncs: every step on CPU (free), every 8th on GPU.
            if dev.type == "cpu" or t % 8 == 7:
                if bool(done.all()):
                    break
                keep = stepper.compact(done, self.prune_below) if len(done) >= 16 else None
                if keep is not None:
                    live, done, tok, pos = live[keep], done[keep], tok[keep], pos[keep]
            logits = stepper.step(tok, pos)
            pos = pos + 1
        return self._trim(out_tok.cpu(), out_lp.cpu(), out_ent.cpu(), stop_ids.cpu())

    @staticmethod
    def _trim(tok, lp, ent, stop_ids):
        """Cut each row ``(max_new,)`` after its first stop token (kept); tail is unused garbage."""
        is_stop = torch.isin(tok, stop_ids)
        has = is_stop.any(1)
        length = torch.where(has, is_stop.int().argmax(1) + 1, tok.shape[1])
        tok, lp, ent = tok.numpy(), lp.numpy(), ent.numpy()
        return [(tok[i, :L].copy(), lp[i, :L].copy(), ent[i, :L].copy(), bool(has[i]))
                for i, L in enumerate(length.tolist())]
