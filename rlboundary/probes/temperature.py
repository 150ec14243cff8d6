"""The temperature control: is RL's loss at large k just a lower temperature in disguise?

RL lowers the policy's token entropy; sampling the *base* model colder lowers it too. The control
finds the temperature T* at which the base model's token entropy on the probe set equals the
checkpoint's (at the probe's temperature), then probes the base at T*. If the base at T* still
beats the checkpoint at large k, the shrinkage is more than lost entropy.

Entropy grows with temperature (exactly so for one softmax: H(softmax(z / T)) is increasing in
T for non-constant logits z; for sampled sequences it holds on average), so T* is found by
bisection. The entropy function is the caller's: the trainer measures it by sampling a small
subset of the problems with a fixed seed, so every evaluation draws the same random numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def softmax_entropy(logits, temperature: float) -> float:
    """Entropy (nats) of softmax(logits / T) for a (V,) vector: the closed-form case."""
    import numpy as np

    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max()
    p = np.exp(z)
    p /= p.sum()
    nz = p > 0
    return float(-(p[nz] * np.log(p[nz])).sum())


def match_temperature(entropy_at: Callable[[float], float], target: float, lo: float,
                      hi: float, tol: float = 1e-3, max_iter: int = 40
                      ) -> tuple[float, float, list[tuple[float, float]]]:
    """Temperature T in [lo, hi] with ``entropy_at(T) == target``, by bisection.

    ``entropy_at``: T -> entropy (nats), increasing in T. Stops when the bracket is narrower
    than ``tol`` (in T) or after ``max_iter`` halvings. Returns (T, entropy_at(T), trace of
    every (T, entropy) evaluated, bracket ends first). Raises ``ValueError`` when ``target``
    lies outside [entropy_at(lo), entropy_at(hi)] (naming both ends) or ``0 < lo < hi`` fails.
    """
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo={lo}, hi={hi}")
    h_lo, h_hi = entropy_at(lo), entropy_at(hi)
    trace = [(lo, h_lo), (hi, h_hi)]
    if not h_lo <= target <= h_hi:
        raise ValueError(f"target entropy {target:.4f} nats is outside [{h_lo:.4f}, "
                         f"{h_hi:.4f}], the entropies at T={lo:g} and T={hi:g}")
    best = min(trace, key=lambda th: abs(th[1] - target))
    for _ in range(max_iter):
        if hi - lo < tol:
            break
        mid = 0.5 * (lo + hi)
        h = entropy_at(mid)
        trace.append((mid, h))
        if abs(h - target) < abs(best[1] - target):
            best = (mid, h)
        if h < target:
            lo = mid
        else:
            hi = mid
        if math.isclose(h, target, rel_tol=0, abs_tol=1e-12):
            break
    return best[0], best[1], trace
