"""Prompt tokens and the sampled distribution: what samplers, the scorer and the trainer share.

:func:`encode_prompts` (text -> token ids, one BOS rule), :func:`as_chat` (a prompt under the
model's chat template), :func:`left_pad` (the left-padded layout every prefill reads) and
:func:`dist_stats` (the distribution a sampler draws from at a temperature and top-p), so a
sampled response is scored and trained on exactly the context and distribution it was sampled
from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def encode_prompts(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Prompt text -> token ids, BOS prepended when the tokenizer has one and the text does not
    already start with it (a chat template may render it: :func:`as_chat`).

    ``add_special_tokens=False`` so that a tokenizer post-processor cannot add a second BOS
    (or an EOS) behind our back; the BOS rule is applied here, once, for every caller.
    """
    bos, bos_text = tokenizer.bos_token_id, tokenizer.bos_token
    out = []
    for text in prompts:
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        lead = bos is not None and not (bos_text and text.startswith(bos_text))
        out.append(([bos] if lead else []) + ids)
    return out


def as_chat(tokenizer, prompts: Sequence[str]) -> list[str]:
    """Each prompt as one user turn under the tokenizer's own chat template, with its
    generation prompt: the text an instruct model continues (``data.chat_template=model``; the
    default ``none`` keeps the prompt as rendered, as the study's base models saw it). Raises
    ``UserError`` when the tokenizer has no chat template."""
    from rlboundary.errors import UserError

    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"data.chat_template=model: the tokenizer of "
                        f"{getattr(tokenizer, 'name_or_path', 'this model')} has no chat "
                        "template (data.chat_template=none uses the prompt as rendered)")
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=True) for p in prompts]


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


def left_pad(prompts: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> ``ids (u, P)`` left-padded with ``pad_id`` and ``mask (u, P)`` (1 = real)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask
