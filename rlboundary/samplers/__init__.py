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
renormalised when ``top_p < 1`` (``tokens.dist_stats``; vLLM's processed logprobs).
``entropy_kind`` on the sampler class says what ``SampleBatch.entropies`` holds: ``"exact"``
(the entropy of that distribution; the ``hf`` sampler) or ``"mc"`` (its one-sample Monte-Carlo
estimate ``-logprob`` of the sampled token; ``vllm``, which only returns sampled-token
logprobs). Both estimate the same quantity; the metric is named after the kind (``entropy`` vs
``entropy_mc``).
"""

from __future__ import annotations

from rlboundary.samplers import hf, vllm  # noqa: F401  (register the built-in samplers)
from rlboundary.samplers.api import SAMPLERS, SampleBatch, decode_responses


def make_sampler(name: str, model_path: str | None = None, /, **kw):
    """Build the sampler registered as ``name``; ``kw`` are its config knobs (conf/sampler/*.yaml).

    A ``name`` key in ``kw`` (a Hydra config passed whole) is ignored: ``name`` and
    ``model_path`` are positional-only, so ``make_sampler(spec["name"], path, **spec)`` works.
    """
    kw.pop("name", None)
    return SAMPLERS.get(name)(model_path, **kw)


__all__ = ["SAMPLERS", "SampleBatch", "decode_responses", "make_sampler"]
