"""Solvability ledger: which problems each checkpoint can solve at all, and how that moved.

Why: a pass@k curve is an average, so a policy can gain on some problems and lose others while
the curve barely moves. The ledger counts problems, not probability: a problem is *solved* by a
checkpoint when at least one of its n samples is correct (c > 0), i.e. pass@n > 0. Comparing the
base model with the policy sorts every problem into both / base_only / policy_only / neither.
The study (arXiv 2504.13837) makes the same comparison and finds the problems the RL model
solves to be nearly a subset of those the base model solves at large k (policy_only small).

Caveat: "solved at k = n" depends on n. Compare checkpoints sampled with the same n, or the
larger n gets a head start; `coverage` does not rescale.
"""

from __future__ import annotations

import numpy as np

CATEGORIES = ("both", "base_only", "policy_only", "neither")


def _solved(n, c, who: str) -> np.ndarray:
    c = np.atleast_1d(np.asarray(c, dtype=np.int64))
    if n is not None:
        n = np.atleast_1d(np.asarray(n, dtype=np.int64))
        if n.shape != c.shape:
            raise ValueError(f"{who}: n {n.shape} and c {c.shape} must have the same shape")
        if np.any(c > n):
            raise ValueError(f"{who}: c > n for some problem")
    if np.any(c < 0):
        raise ValueError(f"{who}: c must be >= 0")
    return c > 0


def _pair(base_n, base_c, pol_n, pol_c) -> tuple[np.ndarray, np.ndarray]:
    b = _solved(base_n, base_c, "base")
    p = _solved(pol_n, pol_c, "policy")
    if b.shape != p.shape:
        raise ValueError(f"base and policy need the same problems, got {b.size} and {p.size}")
    return b, p


def ledger_categories(base_n, base_c, pol_n, pol_c) -> np.ndarray:
    """Category of every problem: (P,) inputs aligned by problem -> (P,) str array.

    Values are 'both', 'base_only', 'policy_only' or 'neither' (solved = c > 0). The n arrays
    only validate c <= n; pass None to skip that check.
    """
    b, p = _pair(base_n, base_c, pol_n, pol_c)
    out = np.full(b.shape, "neither", dtype=object)
    out[b & p] = "both"
    out[b & ~p] = "base_only"
    out[~b & p] = "policy_only"
    return out.astype(str)


def coverage(base_n, base_c, pol_n, pol_c) -> dict[str, float]:
    """Counts and fractions of the four ledger categories.

    Shapes: all (P,), aligned by problem. Returns a flat dict:
      'both', 'base_only', 'policy_only', 'neither'  -> fractions of P (NaN when P == 0),
      'n_both', 'n_base_only', 'n_policy_only', 'n_neither' -> counts,
      'n_problems' -> P.
    The fractions sum to 1; base coverage is both + base_only, policy coverage both + policy_only.
    """
    b, p = _pair(base_n, base_c, pol_n, pol_c)
    counts = {
        "both": int((b & p).sum()),
        "base_only": int((b & ~p).sum()),
        "policy_only": int((~b & p).sum()),
        "neither": int((~b & ~p).sum()),
    }
    P = b.size
    out: dict[str, float] = {k: (v / P if P else float("nan")) for k, v in counts.items()}
    out.update({f"n_{k}": v for k, v in counts.items()})
    out["n_problems"] = P
    return out


def transitions(prev_c, cur_c) -> dict[str, int]:
    """How the solved set moved between two checkpoints on the same problems.

    Shapes: prev_c, cur_c (P,) correct-sample counts, aligned by problem. Returns counts
    {'gained': solved now but not before, 'lost': solved before but not now,
     'kept': solved in both, 'never': solved in neither}; they sum to P.
    """
    a, b = _pair(None, prev_c, None, cur_c)
    return {
        "gained": int((~a & b).sum()),
        "lost": int((a & ~b).sum()),
        "kept": int((a & b).sum()),
        "never": int((~a & ~b).sum()),
    }
