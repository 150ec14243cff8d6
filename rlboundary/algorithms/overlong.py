"""DAPO's soft overlong punishment: a length penalty in the last ``buffer_len`` tokens.

Source: arXiv 2503.14476, section 3.4, equation 13, as verl's ``dapo`` reward manager applies it
(``overlong_buffer_cfg.{len, penalty_factor}``, ``max_resp_len``): with
``L_exp = max_resp_len - buffer_len``, a response of length ``L`` gets
``min(0, -(L - L_exp) / buffer_len * penalty_factor)`` added to its score, so the penalty grows
linearly from 0 at ``L_exp`` to ``-penalty_factor`` at ``max_resp_len``.
"""

from __future__ import annotations

import torch

from rlboundary.algorithms.registries import REWARD_SHAPERS


@REWARD_SHAPERS.register("overlong")
def overlong_penalty(scores: torch.Tensor, response_length: torch.Tensor, *, max_resp_len: int,
                     buffer_len: int, penalty_factor: float) -> torch.Tensor:
    """``scores (B,)`` plus the overlong penalty of ``response_length (B,)`` (tokens) -> ``(B,)``.

    Raises ``ValueError`` unless ``0 < buffer_len <= max_resp_len``.
    """
    if not 0 < buffer_len <= max_resp_len:
        raise ValueError(f"need 0 < buffer_len ({buffer_len}) <= max_resp_len ({max_resp_len})")
    expected = max_resp_len - buffer_len
    exceed = response_length.to(scores.dtype) - expected
    return scores + torch.clamp(-exceed / buffer_len * penalty_factor, max=0.0)
