"""The sampler interface: :class:`SampleBatch` (what every sampler returns), the
:data:`SAMPLERS` registry the samplers add themselves to, and :func:`decode_responses`.

See the package docstring (``rlboundary.samplers``) for the sampling contract.
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
