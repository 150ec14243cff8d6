"""Teacher-forced scoring of responses, and the prompt encoding shared with the samplers.

``score_nll`` gives the "base-model perplexity" of policy samples: the base model reads
``prompt + response`` once (teacher forcing) and we sum the NLL of the response tokens,
``ppl = exp(sum nll / sum tokens)``. It is the probe's second-largest cost after sampling, so
it is one forward per batch with logits at the response positions only and the NLL as
``logsumexp - target logit`` (no softmax over the vocabulary kept per token). ``token_logprobs`` returns the per-token log-probabilities
and entropies at a temperature; the tests use it to check the sampler's bookkeeping.

Both the samplers and the scorer build prompt tokens with :func:`encode_prompts`, so a sampled
response is always scored against exactly the context it was sampled from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlboundary.samplers.steppers import prefill
from rlboundary.samplers.tokens import encode_prompts, left_pad, logprob_entropy


def _resolve_device(model, device) -> torch.device:
    if device is None or device == "auto":
        return next(model.parameters()).device
    return torch.device(device)


#: Largest logits block one scoring batch may hold (rows x response tokens x vocabulary):
#: 2**28 float32 = 1 GiB. Big vocabularies (150k) then score ~1.7k response tokens per batch.
MAX_LOGITS = 1 << 28


def _layout(enc_i: list[int], resp: Sequence[int], width_p: int, width_r: int, pad: int):
    """One row: the prompt left-padded to ``width_p``, the response right-padded to
    ``width_r``, so every row's response starts at column ``width_p``."""
    row = [pad] * (width_p - len(enc_i)) + enc_i + [int(t) for t in resp]
    real = [0] * (width_p - len(enc_i)) + [1] * (len(enc_i) + len(resp))
    fill = width_p + width_r - len(row)
    return row + [pad] * fill, real + [0] * fill


def _forward_responses(model, ids: torch.Tensor, mask: torch.Tensor, width_r: int):
    """Logits predicting each response token: ``(B, width_r, V)`` (only those positions go
    through the LM head: ``logits_to_keep``)."""
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                    logits_to_keep=width_r + 1)
    except TypeError:  # a model without logits_to_keep: full logits, sliced
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos)
    # the logit at position j predicts token j + 1: the last width_r + 1 positions minus one
    return out.logits[:, -(width_r + 1):-1]


def _forward_shared(model, prompts: list[list[int]], row_src: torch.Tensor, resp: torch.Tensor,
                    resp_mask: torch.Tensor, pad: int) -> torch.Tensor:
    """Logits predicting each response token ``(B, W, V)``, each distinct prompt read once.

    ``prompts``: the ``u`` distinct prompts (token lists); ``row_src (B,)``: each row's prompt;
    ``resp (B, W)`` / ``resp_mask``: right-padded responses. The prompts are prefilled once
    into a KV cache, copied to their rows, and the responses read on top of it (as the ``hf``
    sampler decodes): the prompt is not recomputed for each of its n samples.
    """
    dev = resp.device
    ids, mask = (t.to(dev) for t in left_pad(prompts, pad))
    last, cache = prefill(model, ids, mask)
    first = last[row_src][:, None]
    W = resp.shape[1]
    if W == 1:
        return first
    cache.batch_select_indices(row_src)
    full = torch.cat([mask[row_src], resp_mask[:, :W - 1]], 1)
    rpos = mask.sum(1)[row_src][:, None] + torch.arange(W - 1, device=dev)
    rest = model(input_ids=resp[:, :W - 1], attention_mask=full, position_ids=rpos,
                 past_key_values=cache, use_cache=True).logits
    return torch.cat([first, rest], 1)


def _batch_logits(model, enc, responses, idx, resp_len, pkey, pad, dev):
    """``(ids_of_responses (B, W), logits (B, W, V))`` for the rows ``idx``: through the
    shared-prompt path when rows share prompts, else one padded forward."""
    wr = int(resp_len[idx].max())
    resp = torch.tensor([[int(t) for t in responses[i]] + [pad] * (wr - len(responses[i]))
                         for i in idx], dtype=torch.long, device=dev)
    keys = list(dict.fromkeys(pkey[i] for i in idx))
    if len(keys) < len(idx):
        local = {k: j for j, k in enumerate(keys)}
        src = torch.tensor([local[pkey[i]] for i in idx], device=dev)
        rmask = (torch.arange(wr, device=dev)[None, :]
                 < torch.as_tensor(resp_len[idx], device=dev)[:, None]).long()
        try:
            return resp, _forward_shared(model, [enc[k] for k in keys], src, resp, rmask, pad)
        except (TypeError, AttributeError, ValueError):  # a model without cache support
            pass
    wp = max(len(enc[i]) for i in idx)
    rows = [_layout(enc[i], responses[i], wp, wr, pad) for i in idx]
    ids = torch.tensor([r[0] for r in rows], dtype=torch.long, device=dev)
    mask = torch.tensor([r[1] for r in rows], dtype=torch.long, device=dev)
    return resp, _forward_responses(model, ids, mask, wr)


def _batches(order: np.ndarray, resp_len: np.ndarray, batch_size: int, vocab: int):
    """Row groups in ``order`` (sorted by response length) of at most ``batch_size`` rows and
    ``MAX_LOGITS`` logits."""
    start = 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        longest = max(int(resp_len[order[stop - 1]]), 1)
        stop = min(stop, start + max(1, MAX_LOGITS // (longest * max(vocab, 1))))
        yield order[start:stop]
        start = stop


def _prompt_keys(prompts: Sequence[str]) -> list[int]:
    """Each prompt's first index among equal prompts (rows sharing a key share a prompt)."""
    first: dict[str, int] = {}
    return [first.setdefault(p, i) for i, p in enumerate(prompts)]


@torch.inference_mode()
def _teacher_forced(model, tokenizer, prompts, responses, temperature, top_p, batch_size,
                    device, want_entropy: bool):
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    dev = _resolve_device(model, device)
    enc = encode_prompts(tokenizer, prompts)
    resp_len = np.array([len(r) for r in responses], dtype=np.int64)
    order = np.argsort(resp_len, kind="stable")
    out_lp = [np.zeros(0, np.float32)] * len(responses)
    out_ent = [np.zeros(0, np.float32)] * len(responses)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    plain = (not want_entropy and top_p >= 1.0 and temperature and temperature > 0)
    pkey = _prompt_keys(prompts)
    for idx in _batches(order[resp_len[order] > 0], resp_len, batch_size, vocab):
        resp, logits = _batch_logits(model, enc, responses, idx, resp_len, pkey, pad, dev)
        logits, tgt = logits.float(), resp[:, :, None]
        if plain:  # log-probability of the target only: no (B, L, V) softmax kept
            x = logits / temperature if temperature != 1.0 else logits
            lp = (x.gather(-1, tgt)[..., 0] - torch.logsumexp(x, -1)).cpu().numpy()
        else:
            lp_all, ent = logprob_entropy(logits, temperature, top_p)
            lp = lp_all.gather(-1, tgt)[..., 0].cpu().numpy()
            ent = ent.cpu().numpy()
        for row, i in enumerate(idx.tolist()):
            out_lp[i] = lp[row, :resp_len[i]].astype(np.float32)
            if not plain:
                out_ent[i] = ent[row, :resp_len[i]].astype(np.float32)
    return out_lp, out_ent


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

    ``prompts[i]`` pairs with ``responses[i]`` (token ids, response only). Rows are sorted by
    response length and batched (at most ``batch_size`` rows and ``MAX_LOGITS`` logits). In a
    batch whose rows share prompts (a probe's n samples), each distinct prompt
    (``encode_prompts``) is prefilled once into a KV cache that its rows continue from;
    otherwise prompts are left-padded and responses right-padded so that one forward with
    ``logits_to_keep`` puts only the response positions through the LM head. Position ids
    count real tokens, so every row sees what an unpadded pass would. Returns float32 arrays of shape
    ``(len(response),)``: the log-probability of each response token and the entropy (nats)
    at each position, both of the distribution :func:`dist_stats` defines for
    ``temperature`` and ``top_p`` (what the samplers record). Raises ValueError when the two
    lists differ in length.
    """
    return _teacher_forced(model, tokenizer, prompts, responses, temperature, top_p,
                           batch_size, device, want_entropy=True)


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
    lps, _ = _teacher_forced(model, tokenizer, prompts, responses, 1.0, 1.0, batch_size,
                             device, want_entropy=False)
    nll = np.array([-float(lp.astype(np.float64).sum()) for lp in lps], dtype=np.float64)
    ntok = np.array([len(lp) for lp in lps], dtype=np.int64)
    return nll, ntok
