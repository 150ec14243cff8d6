"""cover@τ: the share of problems a model solves reliably, not just once in n tries.

cover(τ) = (1/P) Σ_i 1[c_i / n_i >= τ] for τ in (0, 1]: at τ = 1/n it is the share solved at
least once (pass@n's plug-in), at τ = 1 the share solved every time. pass@k averages this curve:
for a problem with success rate p, 1 - (1 - p)^k = ∫_0^1 k (1 - τ)^(k-1) 1[p >= τ] dτ, so the
mean pass@k over problems is the Beta(1, k)-weighted mean of cover(τ) (arXiv 2510.08325). Small
k weights high τ, large k low τ: a policy that concentrates on fewer problems has its curve above
the base's at high τ and below at low τ, which is the study's pass@1-up, pass@256-down shape seen
problem by problem. We use the plug-in rate c/n per problem (no smoothing), as that paper does.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .counts import check_nc, column
from .suite import PROBES

#: The τ grid of the registered probe (conf/probe/cover.yaml overrides it).
DEFAULT_TAUS = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def cover_at(n, c, taus) -> np.ndarray:
    """Share of problems with success rate ``c/n >= τ``, one value per τ.

    Shapes: ``n``, ``c`` (P,) whole numbers with 0 <= c <= n and n >= 1; ``taus`` (T,) in
    (0, 1]. Returns (T,) floats in [0, 1] (NaN for P = 0). A rate within 1e-12 of τ counts as
    reaching it (so c/n = 0.3 reaches τ = 0.3 despite float rounding). Raises ``ValueError`` on
    a τ outside (0, 1] or bad counts (naming the problem).
    """
    n, c = check_nc(n, c)
    taus = np.atleast_1d(np.asarray(taus, dtype=float))
    if taus.size and (taus.min() <= 0 or taus.max() > 1):
        raise ValueError(f"cover@τ needs 0 < τ <= 1, got {taus.tolist()}")
    if n.size == 0:
        return np.full(taus.shape, np.nan)
    rate = c / n
    return (rate[None, :] >= taus[:, None] - 1e-12).mean(axis=1)


def tau_key(tau: float) -> str:
    """The metric name of one τ: ``cover@0.5`` (``%g`` formatting)."""
    return f"cover@{float(tau):g}"


@PROBES.register("cover")
def probe_cover(cur: Mapping, base: Mapping | None = None, *, taus=DEFAULT_TAUS
                ) -> dict[str, float]:
    """cover@<τ> for each τ of ``taus``: see :func:`cover_at`."""
    n, c = column(cur, "n", None), column(cur, "c", None)
    if n is None or c is None or n.size == 0:
        return {}
    return {tau_key(t): float(v) for t, v in zip(taus, cover_at(n, c, taus))}
