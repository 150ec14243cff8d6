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

from .counts import as_int_array

CATEGORIES = ("both", "base_only", "policy_only", "neither")


def _solved(n, c, who: str) -> np.ndarray:
    """c > 0 per problem after validation; errors name `who` (the side: base, policy, ...)."""
    try:
        c = np.atleast_1d(as_int_array(c, "c"))
        if n is not None:
            n = np.atleast_1d(as_int_array(n, "n"))
    except ValueError as e:
        raise ValueError(f"{who}: {e}") from None
    if n is not None:
        if n.shape != c.shape:
            raise ValueError(f"{who}: n {n.shape} and c {c.shape} must have the same shape")
        if np.any(n < 1):
            i = int(np.flatnonzero(n < 1)[0])
            raise ValueError(f"{who}: n must be >= 1, problem {i} has n={int(n[i])}")
        if np.any(c > n):
            i = int(np.flatnonzero(c > n)[0])
            raise ValueError(f"{who}: c > n at problem {i} (c={int(c[i])}, n={int(n[i])})")
    if np.any(c < 0):
        i = int(np.flatnonzero(c < 0)[0])
        raise ValueError(f"{who}: c must be >= 0, problem {i} has c={int(c[i])}")
    return c > 0


def _pair(base_n, base_c, pol_n, pol_c, names=("base", "policy")
          ) -> tuple[np.ndarray, np.ndarray]:
    b = _solved(base_n, base_c, names[0])
    p = _solved(pol_n, pol_c, names[1])
    if b.shape != p.shape:
        raise ValueError(f"{names[0]} and {names[1]} need the same problems, got {b.size} and "
                         f"{p.size}; align them first (see transitions_shared)")
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
     'kept': solved in both, 'never': solved in neither}; they sum to P. Raises ValueError
    naming the side ('previous' or 'current') whose counts are invalid, or when P differs
    (use transitions_shared for tables with different problems).
    """
    a, b = _pair(None, prev_c, None, cur_c, names=("previous", "current"))
    return {
        "gained": int((~a & b).sum()),
        "lost": int((a & ~b).sum()),
        "kept": int((a & b).sum()),
        "never": int((~a & ~b).sum()),
    }


def transitions_shared(prev_ids, prev_c, cur_ids, cur_c) -> dict[str, int]:
    """transitions() over the problems both checkpoints hold, matched by id.

    Shapes: prev_ids, prev_c (P1,); cur_ids, cur_c (P2,); ids unique within each side. Returns
    transitions' four counts over the shared problems plus 'n_shared' and 'n_left_out' (the
    problems only one side holds, both sides counted). Example: previous {a: 1, b: 0},
    current {b: 2, c: 0} -> shared {b}: gained 1, n_shared 1, n_left_out 2.
    """
    pi = np.asarray(prev_ids).astype(str)
    ci = np.asarray(cur_ids).astype(str)
    for who, ids in (("previous", pi), ("current", ci)):
        if np.unique(ids).size != ids.size:
            raise ValueError(f"{who}: problem ids are not unique")
    common, ia, ib = np.intersect1d(pi, ci, return_indices=True)
    a = np.atleast_1d(np.asarray(prev_c))
    b = np.atleast_1d(np.asarray(cur_c))
    if a.shape != pi.shape or b.shape != ci.shape:
        raise ValueError("ids and counts must have the same shape on each side")
    out = transitions(a[ia], b[ib])
    out["n_shared"] = int(common.size)
    out["n_left_out"] = int(pi.size + ci.size - 2 * common.size)
    return out
