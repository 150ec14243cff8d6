"""Teacher-forced scoring of responses, and the prompt encoding shared with the samplers.

``score_nll`` gives the "base-model perplexity" of policy samples: the base model reads
``prompt + response`` once (teacher forcing) and we sum the NLL of the response tokens,
``ppl = exp(sum nll / sum tokens)``. ``token_logprobs`` returns the per-token log-probabilities
and entropies at a temperature; the tests use it to check the sampler's bookkeeping.

Both the samplers and the scorer build prompt tokens with :func:`encode_prompts`, so a sampled
response is always scored against exactly the context it was sampled from.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Raw text -> token ids, no chat template, BOS prepended when the tokenizer has one.

    ``add_special_tokens=False`` so that a tokenizer post-processor cannot add a second BOS
    (or an EOS) behind our back; the BOS rule is applied here, once, for every caller.
    """
    bos = tokenizer.bos_token_id
    out = []
    for text in prompts:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        out.append(([bos] if bos is not None else []) + ids)
    return out


def dist_stats(logits: torch.Tensor, temperature: float, top_p: float = 1.0):
    """``logits (..., V)`` -> ``(logp (..., V), p (..., V), entropy (...))`` of the distribution a
    sampler draws from: ``softmax(logits / T)``, truncated to its top-p nucleus and renormalised
    when ``top_p < 1``.

    The nucleus is the smallest prefix of the descending-sorted probabilities whose mass reaches
    ``top_p`` (the first token always stays). This is the quantity vLLM reports as processed
    logprobs, so both samplers give ``logprobs``/``entropies`` one meaning: log-probability and
    entropy (nats) of the distribution actually sampled from. Tokens outside the nucleus get
    ``logp = -inf`` and ``p = 0``. All float32. Greedy decoding (``T == 0``) has a degenerate
    distribution; we then report the model's own distribution (``T = 1``, no truncation), which
    is what a comparison with the base wants. ``-inf`` logits (masked vocabulary) give ``p = 0``
    and add nothing to the entropy.
    """
    greedy = not temperature or temperature <= 0
    t = 1.0 if greedy else float(temperature)
    x = logits.float()
    if t != 1.0:
        x = x / t
    lp = torch.log_softmax(x, dim=-1)
    p = lp.exp()
    if top_p < 1.0 and not greedy:
        ps, idx = p.sort(dim=-1, descending=True)
        keep_sorted = (ps.cumsum(-1) - ps) < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)
        mass = (p * keep).sum(-1, keepdim=True)
        lp = torch.where(keep, lp - mass.log(), torch.full_like(lp, -math.inf))
        p = torch.where(keep, p / mass, torch.zeros_like(p))
    ent = -(p * lp.clamp(min=-1e30)).sum(-1)
    return lp, p, ent


def logprob_entropy(logits: torch.Tensor, temperature: float, top_p: float = 1.0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits (..., V)`` -> ``(logp (..., V), entropy (...))`` of the sampled distribution;
    see :func:`dist_stats`."""
    lp, _, ent = dist_stats(logits, temperature, top_p)
    return lp, ent


def _resolve_device(model, device) -> torch.device:
    if device is None or device == "auto":
        return next(model.parameters()).device
    return torch.device(device)


@torch.inference_mode()
def token_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str],
    responses: Sequence[Sequence[int]],
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    device=None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Teacher-forced per-token ``(logprobs, entropies)`` of each response given its prompt.

    ``prompts[i]`` pairs with ``responses[i]`` (token ids, response only). Sequences are
    ``encode_prompts(prompt) + response``, right-padded into batches of ``batch_size`` after
    sorting by length (less padding); right padding keeps the natural position ids, so no
    position bookkeeping is needed. Returns float32 arrays of shape ``(len(response),)``: the
    log-probability of each response token and the entropy (nats) at each position, both of the
    distribution :func:`dist_stats` defines for ``temperature`` and ``top_p`` (what the samplers
    record).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    dev = _resolve_device(model, device)
    enc = encode_prompts(tokenizer, prompts)
    seqs = [p + [int(t) for t in r] for p, r in zip(enc, responses)]
    order = np.argsort([len(s) for s in seqs], kind="stable")
    out_lp: list[np.ndarray] = [np.zeros(0, np.float32)] * len(seqs)
    out_ent: list[np.ndarray] = [np.zeros(0, np.float32)] * len(seqs)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(seqs), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
            mask[row, : len(seqs[i])] = 1
        logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits
        for row, i in enumerate(idx):
            p, n = len(enc[i]), len(responses[i])
            if n == 0:
                continue
            # logits at position j predict token j + 1: response tokens sit at p .. p+n-1.
            lp, ent = logprob_entropy(logits[row, p - 1 : p + n - 1], temperature, top_p)
            tgt = ids[row, p : p + n].to(dev)
            out_lp[i] = lp.gather(-1, tgt[:, None])[:, 0].cpu().numpy().astype(np.float32)
            out_ent[i] = ent.cpu().numpy().astype(np.float32)
    return out_lp, out_ent


def score_nll(
    model,
    tokenizer,
    prompts: Sequence[str],
    responses: Sequence[Sequence[int]],
    batch_size: int = 64,
    device=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of response-token NLL (nats) under ``model`` at T=1, and the token counts.

    Returns ``(nll_sum (S,), n_tokens (S,))`` with ``S = len(responses)``; ``prompts[i]`` is the
    prompt of ``responses[i]``. Empty responses score ``(0.0, 0)``. EOS, when the response
    contains it, is scored like any other token (the policy chose to stop there).
    """
    lps, _ = token_logprobs(
        model, tokenizer, prompts, responses, temperature=1.0, batch_size=batch_size, device=device
    )
    nll = np.array([-float(lp.astype(np.float64).sum()) for lp in lps], dtype=np.float64)
    ntok = np.array([len(lp) for lp in lps], dtype=np.int64)
    return nll, ntok
