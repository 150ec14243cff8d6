"""Rollouts as padded tensors, and the teacher-forced forward passes the update needs.

Layout follows verl's ``DataProto`` batch: prompts left-padded to ``P``, responses right-padded
to ``T``, ``input_ids = [prompt | response]`` of shape ``(B, P + T)``; ``response_mask (B, T)``
is 1 on response tokens (EOS included when produced) and 0 on padding. Position ids count real
tokens only, so a padded row sees what an unpadded forward pass would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlboundary.samplers.tokens import left_pad, logprob_entropy


def collate(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]],
            pad_id: int) -> dict[str, torch.Tensor]:
    """Token lists -> ``prompts (B, P)``, ``responses (B, T)``, ``input_ids (B, P+T)``,
    ``attention_mask (B, P+T)``, ``position_ids (B, P+T)``, ``response_mask (B, T)`` (float32).

    Raises ``ValueError`` on an empty batch or a prompt/response count mismatch.
    """
    if len(prompt_ids) != len(response_ids) or not len(prompt_ids):
        raise ValueError(f"{len(prompt_ids)} prompts and {len(response_ids)} responses")
    B = len(prompt_ids)
    T = max(1, max(len(r) for r in response_ids))
    prompts, pmask = left_pad([list(p) for p in prompt_ids], pad_id)  # the sampler's layout
    responses = torch.full((B, T), pad_id, dtype=torch.long)
    rmask = torch.zeros((B, T), dtype=torch.long)
    for i, r in enumerate(response_ids):
        if len(r):
            responses[i, :len(r)] = torch.as_tensor(np.asarray(r, dtype=np.int64))
            rmask[i, :len(r)] = 1
    attention = torch.cat([pmask, rmask], 1)
    return {"prompts": prompts, "responses": responses,
            "input_ids": torch.cat([prompts, responses], 1), "attention_mask": attention,
            "position_ids": (attention.cumsum(1) - 1).clamp(min=0),
            "response_mask": rmask.float()}


def select(batch: dict, rows) -> dict:
    """The rows ``rows`` (index tensor or list) of every ``(B, ...)`` tensor in ``batch``."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    return {k: (v[rows] if isinstance(v, torch.Tensor) and v.dim() else v)
            for k, v in batch.items()}


FULL_KEYS = ("input_ids", "attention_mask", "position_ids")  # (B, P + T)
PROMPT_KEYS = ("prompts",)  # (B, P); every other 2-D tensor is per response token (B, T)


def trim(batch: dict) -> dict:
    """Drop padding every row shares: left prompt columns and right response columns.

    A micro-batch of short responses then costs what its longest row needs, not what the
    longest row of the whole batch needs. Position ids are unchanged (they count real tokens).
    """
    P = batch["prompts"].shape[1]
    p_real = int(batch["attention_mask"][:, :P].sum(1).max())
    t_real = max(1, int(batch["response_mask"].sum(1).max()))
    cut = P - p_real
    out = {}
    for k, v in batch.items():
        if not isinstance(v, torch.Tensor) or v.dim() < 2:
            out[k] = v
        elif k in FULL_KEYS:
            out[k] = v[:, cut:P + t_real]
        elif k in PROMPT_KEYS:
            out[k] = v[:, cut:]
        else:
            out[k] = v[:, :t_real]
    return out


def micro_batches(batch: dict, size: int) -> list[dict]:
    """Rows of ``batch`` in micro-batches of ``size``, sorted by response length and each
    trimmed of shared padding (:func:`trim`); together they hold every row exactly once."""
    lengths = batch["response_mask"].sum(1)
    order = torch.argsort(lengths, stable=True)
    return [trim(select(batch, order[i:i + size])) for i in range(0, len(order), max(1, size))]


def response_logprobs(model, batch: dict, temperature: float, with_entropy: bool = True
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Teacher-forced ``log_softmax(logits / T)`` of each response token, ``(B, T)``, and the
    entropy of ``softmax(logits / T)`` at each response position, ``(B, T)`` (nats), or None.

    As in verl's actor, logits are divided by the rollout temperature, so ``old_log_probs``
    and the ratio refer to the distribution the rollout sampled from (before top-p).
    Gradients flow when called outside ``torch.no_grad``.
    """
    T = batch["responses"].shape[1]
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   position_ids=batch["position_ids"]).logits[:, -T - 1:-1]
    logp, ent = logprob_entropy(logits, temperature)
    token_logp = logp.gather(-1, batch["responses"][..., None])[..., 0]
    return token_logp, (ent if with_entropy else None)


def response_values(critic, batch: dict) -> torch.Tensor:
    """The critic's value of the state before each response token, ``(B, T)``; like verl's
    critic, the value of token t is read at position t - 1 of ``[prompt | response]``."""
    T = batch["responses"].shape[1]
    out = critic(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 position_ids=batch["position_ids"]).logits[..., 0]
    return out[:, -T - 1:-1]


def minibatches(n_rows: int, size: int, generator: torch.Generator | None):
    """Row indices in mini-batches of ``size`` (the last may be smaller); shuffled with
    ``generator`` when given."""
    order = torch.randperm(n_rows, generator=generator) if generator is not None \
        else torch.arange(n_rows)
    return [order[i:i + size] for i in range(0, n_rows, max(1, size))]


def sft_loss(log_probs: torch.Tensor, response_mask: torch.Tensor,
             batch_num_tokens: torch.Tensor | int) -> torch.Tensor:
    """verl's response-only SFT loss (``verl.workers.utils.losses.sft_loss``, left/right padded
    layout): ``-sum(log_probs * response_mask) / batch_num_tokens``, with ``log_probs,
    response_mask (B, T)`` and ``batch_num_tokens`` the response tokens of the whole batch a
    micro-batch belongs to (so micro-batch losses add up to the batch's mean, in nats)."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.dataset_utils import DatasetPadMode
    from verl.workers.utils.losses import sft_loss as verl_sft_loss

    data = TensorDict({"response_mask": response_mask}, batch_size=[len(response_mask)])
    tu.assign_non_tensor(data, pad_mode=DatasetPadMode.LEFT_RIGHT, dp_size=1,
                         batch_num_tokens=batch_num_tokens)
    return verl_sft_loss(None, {"log_probs": log_probs}, data)[0]
