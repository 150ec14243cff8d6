"""Samplers: draw ``n`` completions per prompt from a checkpoint, with per-token statistics.

Every sampler is registered in :data:`SAMPLERS` and built with :func:`make_sampler`. The
interface (see CONTRACTS.md)::

    sampler.sample(prompts, n, *, max_new_tokens, temperature, top_p, seed, keys=None, first=0)
        -> SampleBatch

With ``keys`` (one int per prompt) sampling is keyed: sample ``first + j`` of a prompt depends
on ``(seed, key, first + j)`` only, so drawing 16 samples and then 16 more (``first=16``) gives
the samples of one call with ``n=32`` (:mod:`.keyed`; probes use it, training does not).

Every sampler records, per token, the log-probability of the sampled token under the
distribution it sampled from: ``softmax(logits / T)``, truncated to the top-p nucleus and
renormalised when ``top_p < 1`` (``scoring.dist_stats``; vLLM's processed logprobs).
``entropy_kind`` on the sampler class says what ``SampleBatch.entropies`` holds: ``"exact"``
(the entropy of that distribution; the ``hf`` sampler) or ``"mc"`` (its one-sample Monte-Carlo
estimate ``-logprob`` of the sampled token; ``vllm``, which only returns sampled-token
logprobs). Both estimate the same quantity; the metric is named after the kind (``entropy`` vs
``entropy_mc``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlboundary.registry import Registry

SAMPLERS: Registry[Any] = Registry("sampler")


@dataclass
class SampleBatch:
    """``S = len(prompts) * n`` samples, prompt-major (prompt 0's n samples, then prompt 1's ...).

    ``token_ids[i]``: response tokens only, EOS included when produced (int64 ``(L_i,)``).
    ``texts[i]``: decoded response, special tokens kept except EOS/pad.
    ``finish_reasons[i]``: ``"stop"`` (EOS) or ``"length"`` (hit max_new_tokens).
    ``logprobs[i]`` / ``entropies[i]``: float32 ``(L_i,)``, see the module docstring.
    """

    prompt_index: np.ndarray
    token_ids: list[np.ndarray]
    texts: list[str]
    finish_reasons: list[str]
    logprobs: list[np.ndarray]
    entropies: list[np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.token_ids)

    @property
    def lengths(self) -> np.ndarray:
        """Response lengths in tokens, ``(S,)``."""
        return np.array([len(t) for t in self.token_ids], dtype=np.int64)

    @property
    def truncated(self) -> np.ndarray:
        """``(S,)`` bool: the sample hit max_new_tokens before EOS."""
        return np.array([r == "length" for r in self.finish_reasons], dtype=bool)


def decode_responses(tokenizer, token_ids: list[np.ndarray]) -> list[str]:
    """Decode responses keeping special tokens (``<think>``, ``<answer>`` ...) but not EOS/pad.

    Shared by every sampler so ``texts`` means the same thing whichever engine drew it.
    """
    drop = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
    out = []
    for ids in token_ids:
        keep = [int(t) for t in ids if int(t) not in drop]
        out.append(tokenizer.decode(keep, skip_special_tokens=False, clean_up_tokenization_spaces=False))
    return out


def make_sampler(name: str, model_path: str | None = None, /, **kw):
    """Build the sampler registered as ``name``; ``kw`` are its config knobs (conf/sampler/*.yaml).

    A ``name`` key in ``kw`` (a Hydra config passed whole) is ignored: ``name`` and
    ``model_path`` are positional-only, so ``make_sampler(spec["name"], path, **spec)`` works.
    """
    kw.pop("name", None)
    return SAMPLERS.get(name)(model_path, **kw)


# Register the built-in samplers (vllm imports vllm lazily, so this is always safe).
from rlboundary.trainer.samplers import hf as _hf  # noqa: E402,F401
from rlboundary.trainer.samplers import vllm as _vllm  # noqa: E402,F401

__all__ = ["SAMPLERS", "SampleBatch", "decode_responses", "make_sampler"]
