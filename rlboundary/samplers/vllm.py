"""``vllm`` sampler: the vLLM offline engine, for GPU runs (``pip install rlboundary[gpu]``).

vLLM is imported inside the constructor only, so this module (and the registry) import fine on
machines without it; choosing the sampler there raises an ImportError that says what to install.

Differences from the ``hf`` sampler, by construction:

* vLLM returns the log-probability of the sampled token only, so ``entropies`` holds the
  one-sample Monte-Carlo estimate ``-logprob`` (``entropy_kind = "mc"``; name it ``entropy_mc``).
  Its mean over many tokens estimates the mean entropy of the distribution sampled from.
* ``logprobs_mode="processed_logprobs"`` (default here) reports logprobs after temperature and
  top-p truncation, i.e. of the renormalised nucleus actually sampled; vLLM's own default,
  ``raw_logprobs``, ignores both. The ``hf`` sampler records the same quantity
  (``tokens.dist_stats``), so ``logprob_sum`` has one meaning across samplers.
* ``n > 1`` requests are split by vLLM into ``n`` child requests with seeds ``seed + i``; we give
  each prompt its own random base seed drawn from ``sample(seed=...)``, so runs are reproducible
  up to GPU non-determinism and two prompts sharing a child seed is improbable. With ``keys``
  the base seed is a function of ``(seed, key)`` (:func:`.keyed.stream_key`) and the request's
  seed is ``base + first``, so sample ``first + j`` always has child seed ``base + first + j``:
  rounds of samples nest into one call's samples, as the ``hf`` sampler's keyed sampling does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlboundary.samplers import keyed
from rlboundary.samplers.api import SAMPLERS, SampleBatch, decode_responses
from rlboundary.samplers.tokens import encode_prompts

# keyed base seeds stay below 2**31 - 2**20, leaving room for sample indices (first + j < 2**20)
_KEYED_SEEDS = 2**31 - 2**20

# vllm.LLM arguments that can change the dtype ModelConfig resolves
_DTYPE_KWARGS = ("dtype", "revision", "trust_remote_code", "hf_overrides", "quantization",
                 "tokenizer", "code_revision")

_INSTALL_HINT = (
    "the 'vllm' sampler needs vLLM, which is not installed: pip install rlboundary[gpu] "
    "(or use sampler=hf)"
)


@SAMPLERS.register("vllm")
class VLLMSampler:
    """Sampling through ``vllm.LLM`` with prefix caching (prompt KV shared by its n samples)."""

    entropy_kind = "mc"

    @staticmethod
    def resolved_dtype(model_path: str, *, dtype: str = "auto", engine_kwargs: dict | None = None,
                       **_ignored) -> str:
        """The dtype vLLM will run the model in, by vLLM's own rule (``vllm.config.ModelConfig``:
        ``auto`` takes the checkpoint's dtype, float32 checkpoints drop to bfloat16, or float16
        where the platform lacks bfloat16; bfloat16 on CPU), without starting an engine. The
        ``engine_kwargs`` that bear on it (dtype, revision, remote code, overrides, quantization)
        are passed on. Raises ImportError without vLLM; vLLM's own errors for a config it
        rejects (the engine would reject it too)."""
        try:
            from vllm.config import ModelConfig
        except ImportError as e:
            raise ImportError(_INSTALL_HINT) from e
        kw = {k: v for k, v in dict(engine_kwargs or {}).items() if k in _DTYPE_KWARGS}
        kw.setdefault("dtype", dtype)
        return str(ModelConfig(model=model_path, **kw).dtype).removeprefix("torch.")

    def __init__(self, model_path: str, *, tokenizer=None, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.5, enable_prefix_caching: bool = True,
                 max_model_len: int | None = None, logprobs_mode: str = "processed_logprobs",
                 enforce_eager: bool = False, seed: int = 0,
                 stop_token_ids: Sequence[int] | None = None, engine_kwargs: dict | None = None,
                 **_ignored):
        try:
            import vllm
        except ImportError as e:
            raise ImportError(_INSTALL_HINT) from e
        from transformers import AutoTokenizer

        self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(
            model_path)
        kw = dict(model=model_path, dtype=dtype, seed=int(seed),
                  gpu_memory_utilization=float(gpu_memory_utilization),
                  enable_prefix_caching=bool(enable_prefix_caching),
                  logprobs_mode=logprobs_mode, enforce_eager=bool(enforce_eager))
        if max_model_len:
            kw["max_model_len"] = int(max_model_len)
        kw.update(dict(engine_kwargs or {}))
        self.llm = vllm.LLM(**kw)
        #: the dtype the engine runs in (``dtype="auto"`` on CPU: bfloat16, whose log-probs are
        #: up to ~0.3 nats off a float32 pass; ``dtype=float32`` matches it within ~1e-4)
        self.dtype = str(self.llm.llm_engine.model_config.dtype).removeprefix("torch.")
        self._params_cls = vllm.SamplingParams
        eos = self.tokenizer.eos_token_id
        self.stop_ids = sorted(set(stop_token_ids or []) | ({eos} if eos is not None else set()))

    def close(self) -> None:
        """Stop the engine's process now (vLLM otherwise stops it at interpreter exit)."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.llm_engine.engine_core.shutdown()

    def _params(self, n, max_new_tokens, temperature, top_p, seed):
        return self._params_cls(
            n=n, temperature=float(temperature), top_p=float(top_p), max_tokens=int(max_new_tokens),
            logprobs=0,  # the sampled token's logprob only
            seed=int(seed), stop_token_ids=list(self.stop_ids), skip_special_tokens=False,
            detokenize=False)  # texts come from decode_responses, same as the hf sampler

    def sample(self, prompts: Sequence[str], n: int, *, max_new_tokens: int,
               temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
               keys: Sequence[int] | None = None, first: int = 0) -> SampleBatch:
        """Draw ``n`` samples per prompt; ``-> SampleBatch`` (prompt-major, MC entropies).
        ``keys``/``first``: keyed sampling, see the module docstring."""
        enc = encode_prompts(self.tokenizer, prompts)
        if keys is None:
            base = np.random.default_rng(seed).integers(0, 2**31 - 1 - n, size=len(enc))
        else:
            if len(keys) != len(enc):
                raise ValueError(f"{len(keys)} keys for {len(enc)} prompts")
            base = [keyed.stream_key(seed, k) % _KEYED_SEEDS + int(first) for k in keys]
        params = [self._params(n, max_new_tokens, temperature, top_p, s) for s in base]
        outs = self.llm.generate([{"prompt_token_ids": e} for e in enc], params, use_tqdm=False)
        toks, lps, reasons = [], [], []
        for out in outs:  # vLLM returns outputs in input order
            comps = sorted(out.outputs, key=lambda c: c.index)
            if len(comps) != n:
                raise RuntimeError(f"vLLM returned {len(comps)} completions, expected {n}")
            for c in comps:
                ids = np.asarray(c.token_ids, dtype=np.int64)
                toks.append(ids)
                lps.append(self._sampled_logprobs(ids, c.logprobs))
                reasons.append("stop" if c.finish_reason == "stop" else "length")
        return SampleBatch(
            prompt_index=np.repeat(np.arange(len(enc)), n), token_ids=toks,
            texts=decode_responses(self.tokenizer, toks), finish_reasons=reasons,
            logprobs=lps, entropies=[-lp for lp in lps],
            meta={"sampler": "vllm", "temperature": temperature, "top_p": top_p, "seed": seed,
                  "max_new_tokens": max_new_tokens, "entropy_kind": self.entropy_kind,
                  "dtype": self.dtype})

    @staticmethod
    def _sampled_logprobs(ids: np.ndarray, logprobs) -> np.ndarray:
        """Per-position ``{token_id: Logprob}`` maps -> float32 ``(L,)`` at the sampled ids."""
        if logprobs is None:
            raise RuntimeError("vLLM returned no logprobs (SamplingParams.logprobs was set)")
        out = np.empty(len(ids), dtype=np.float32)
        for i, tok in enumerate(ids.tolist()):
            entry = logprobs[i][tok]
            out[i] = getattr(entry, "logprob", entry)
        return out
