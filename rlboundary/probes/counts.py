"""Sample counts every probe reads: validated ``n`` and ``c`` per problem, the exact pass@k
matrix over problems and k, and a table column as an array.

Validation is strict on purpose: a ``c`` of 0.5 or a ``c > n`` raises ``ValueError`` naming the
first bad problem, never becomes a silently rounded count (probes/passk.py has the estimator's
derivation; this module only evaluates it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Largest number of float64 cells one block of the (problems, k) work matrix may hold.
BLOCK_CELLS = 1 << 22


def as_int_array(x, name: str) -> np.ndarray:
    """Whole numbers as int64; a float that is NaN, infinite or fractional raises ValueError
    naming the first offending index and value (never silently truncated: c=0.5 is not 0)."""
    a = np.asarray(x)
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric, got {a!r}") from None
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if np.any(bad):
            i = tuple(int(j) for j in np.argwhere(np.atleast_1d(bad))[0])
            at = f" at problem {i[0]}" if a.ndim else ""
            raise ValueError(f"{name} must hold whole numbers, got {name}="
                             f"{float(np.atleast_1d(a)[i])}{at}")
        a = a.astype(np.int64)
    elif a.dtype.kind in "iub":
        a = a.astype(np.int64)
    else:
        raise ValueError(f"{name} must be integer, got dtype {a.dtype}")
    return a


def check_nc(n, c) -> tuple[np.ndarray, np.ndarray]:
    """Validate and broadcast sample counts; returns 1-D int64 arrays (P,)."""
    n = as_int_array(n, "n")
    c = as_int_array(c, "c")
    if n.ndim > 1 or c.ndim > 1:
        raise ValueError(f"n and c must be scalars or 1-D (P,), got shapes {n.shape}, {c.shape}")
    n, c = np.broadcast_arrays(np.atleast_1d(n), np.atleast_1d(c))
    if np.any(n < 1):
        raise ValueError(f"n must be >= 1 for every problem, got min n = {int(n.min())}")
    if np.any(c < 0) or np.any(c > n):
        bad = int(np.flatnonzero((c < 0) | (c > n))[0])
        raise ValueError(f"need 0 <= c <= n; problem {bad} has c={int(c[bad])}, n={int(n[bad])}")
    return n, c


def check_ks(k, n: np.ndarray) -> np.ndarray:
    """Validate k against every problem's n; returns 1-D int64 (K,)."""
    ks = as_int_array(k, "k")
    if ks.ndim > 1:
        raise ValueError(f"k must be an int or 1-D (K,), got shape {ks.shape}")
    ks = np.atleast_1d(ks)
    if ks.size and int(ks.min()) < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={int(ks.min())}")
    if ks.size and n.size and int(ks.max()) > int(n.min()):
        bad = int(np.argmin(n))
        raise ValueError(
            f"pass@k needs k <= n, got k={int(ks.max())} but problem {bad} has only "
            f"n={int(n[bad])} samples")
    return ks


def pass_at_k_matrix(n: np.ndarray, c: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Per-problem pass@k for validated inputs: (P,), (P,), (K,) -> (P, K) float64."""
    P, K = n.size, ks.size
    out = np.empty((P, K), dtype=np.float64)
    if P == 0 or K == 0:
        return out
    kmax = int(ks.max())
    i = np.arange(kmax, dtype=np.float64)                    # (kmax,)
    rows = max(1, BLOCK_CELLS // kmax)
    for s in range(0, P, rows):
        nb = n[s:s + rows, None].astype(np.float64)          # (b, 1)
        cb = c[s:s + rows, None].astype(np.float64)
        # log of factor i: log((n-c-i)/(n-i)) = log1p(-c/(n-i)); i <= k-1 <= n-1 so n-i >= 1.
        # Once i >= n-c the factor is 0 (log -inf, product 0, pass@k exactly 1); beyond that
        # c/(n-i) would exceed 1 and log1p would give NaN, so clip the ratio at 1.
        ratio = np.minimum(cb / np.maximum(nb - i, 1.0), 1.0)  # (b, kmax)
        with np.errstate(divide="ignore"):
            logq = np.cumsum(np.log1p(-ratio), axis=1)
        out[s:s + rows] = -np.expm1(logq[:, ks - 1])
    return out


def column(table: Mapping, name: str, dtype=float) -> np.ndarray | None:
    """A column of a per-problem table as an array, None when absent; ``dtype=None`` keeps its
    values as they are (counts are validated by the probes, never cast: a c of 0.5 must fail,
    not become 0)."""
    if name not in table:
        return None
    return np.asarray(table[name]) if dtype is None else np.asarray(table[name], dtype=dtype)
