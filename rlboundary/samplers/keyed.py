"""Keyed (counter-based) random numbers: sample ``j`` of a problem is the same draw however it
is batched.

Why: a probe that draws a problem's samples in rounds (adaptive pass@k) or in chunks of other
sizes, or on another number of workers, must see the *same* samples a one-shot probe sees, so
that an early-stopped curve is a sub-sample of the full one and resumed probes reproduce
uninterrupted ones. A shared ``torch.Generator`` cannot give that: which uniform a row receives
depends on which other rows share its batch. Here the uniform that picks token ``t`` of sample
``j`` of a prompt is a pure function of ``(seed, key, j, t)``:

    stream = mix(mix(seed) ^ key);  row = mix(stream + (j + 1) * GOLDEN)
    u(t)   = top 53 bits of mix(row + (t + 1) * GOLDEN) / 2**53

with ``mix`` the SplitMix64 finaliser (Steele, Lea & Flood 2014, "Fast splittable
pseudorandom number generators"), evaluated on int64 tensors with wrap-around arithmetic (torch
multiplies int64 modulo 2**64; the logical right shift is emulated with a mask).

Floating point is the one limit: a batched matmul may round a row's logits differently in
batches of different shapes, so a uniform that lands within ~1e-7 of a token boundary can pick
the neighbouring token. Samples are then identical almost always, not bit for bit always.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

_M64 = (1 << 64) - 1


def _signed(x: int) -> int:
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


_C1, _C2, _GOLDEN = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0x9E3779B97F4A7C15
_T_C1, _T_C2, _T_GOLDEN = _signed(_C1), _signed(_C2), _signed(_GOLDEN)


def mix_int(x: int) -> int:
    """SplitMix64's finaliser on a Python int, as an unsigned 64-bit int."""
    x &= _M64
    x ^= x >> 30
    x = (x * _C1) & _M64
    x ^= x >> 27
    x = (x * _C2) & _M64
    return x ^ (x >> 31)


def stream_key(seed: int, key: int) -> int:
    """The stream of one prompt under one seed (unsigned 64-bit)."""
    return mix_int(mix_int(int(seed)) ^ (int(key) & _M64))


def problem_key(problem_id: str) -> int:
    """A stable 64-bit key for a problem id (the first 8 bytes of its sha256)."""
    return int.from_bytes(hashlib.sha256(problem_id.encode()).digest()[:8], "little")


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic on signed ints)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def mix(x: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser on an int64 tensor (bits as unsigned, wrap-around products)."""
    x = x ^ _shr(x, 30)
    x = x * _T_C1
    x = x ^ _shr(x, 27)
    x = x * _T_C2
    return x ^ _shr(x, 31)


def row_keys(seed: int, keys: Sequence[int], samples: Sequence[Sequence[int]],
             device=None) -> torch.Tensor:
    """int64 ``(R,)``: one key per row, rows = prompt ``p``'s sample indices ``samples[p]`` in
    order (prompt-major)."""
    out = []
    for key, js in zip(keys, samples):
        s = stream_key(seed, key)
        out.extend(_signed(s + (int(j) + 1) * _GOLDEN) for j in js)
    return mix(torch.tensor(out, dtype=torch.int64, device=device))


def uniforms(rows: torch.Tensor, step: int) -> torch.Tensor:
    """float64 ``(R,)`` in ``[0, 1)``: the uniform of each row's token ``step``."""
    x = mix(rows + _signed((int(step) + 1) * _GOLDEN))
    return _shr(x, 11).to(torch.float64) * (2.0 ** -53)


def uniforms_int(seed: int, key: int, j: int, step: int) -> float:
    """The same uniform computed with Python ints (the reference the tests compare to)."""
    row = mix_int(stream_key(seed, key) + (j + 1) * _GOLDEN)
    return (mix_int(row + (step + 1) * _GOLDEN) >> 11) * 2.0 ** -53
