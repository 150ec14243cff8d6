"""Answer diversity: how many different final answers a model reaches on a problem.

Token entropy falls under RL; this asks whether the set of answers falls too. Per problem, over
its n samples: the number of distinct final answers and the Shannon entropy (nats) of their
empirical distribution, for all samples that give an answer and for the correct ones alone.
Answers are compared after the verifier's normalisation (the trainer keys them with
``tasks.verify_extract.normalize``, numbers by exact value), so "0.5" and "1/2" are one answer.
Samples with no extractable answer are left out (a problem with none has 0 distinct answers and
entropy 0). The dataset metrics are means over problems; the ``_correct`` ones over the problems
with at least one correct sample (left out when none has).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .counts import column
from .suite import PROBES

#: Per-problem columns of the probe table (probing/rows.aggregate writes them).
COLUMNS = ("answers_distinct", "answers_entropy", "answers_distinct_correct",
           "answers_entropy_correct")


def answer_diversity(problem: np.ndarray, key: np.ndarray, n_problems: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Distinct answers and the entropy of their distribution, per problem.

    Shapes: ``problem`` (S,) ints in [0, P) (each sample's problem), ``key`` (S,) ints, the
    answer's code (equal codes = equal answers; -1 = no answer, left out). Returns (distinct
    (P,) ints, entropy (P,) floats in nats, ``-Σ p log p`` over the answers' shares). Raises
    ``ValueError`` on mismatched shapes or a problem index outside [0, P).
    """
    problem, key = np.asarray(problem, dtype=np.int64), np.asarray(key, dtype=np.int64)
    if problem.shape != key.shape or problem.ndim != 1:
        raise ValueError(f"problem {problem.shape} and key {key.shape} must be equal (S,)")
    if problem.size and (problem.min() < 0 or problem.max() >= n_problems):
        raise ValueError(f"problem index outside [0, {n_problems})")
    distinct = np.zeros(n_problems, dtype=np.int64)
    entropy = np.zeros(n_problems, dtype=np.float64)
    keep = key >= 0
    if not keep.any():
        return distinct, entropy
    pairs, counts = np.unique(np.stack([problem[keep], key[keep]]), axis=1, return_counts=True)
    owner = pairs[0]
    np.add.at(distinct, owner, 1)
    totals = np.bincount(owner, weights=counts, minlength=n_problems)
    share = counts / totals[owner]
    np.add.at(entropy, owner, -share * np.log(share))
    return distinct, entropy


@PROBES.register("answers")
def probe_answers(cur: Mapping, base: Mapping | None = None) -> dict[str, float]:
    """Dataset means of :data:`COLUMNS` (``answers_distinct`` ...); {} when the table predates
    them (a result stored before this probe existed). ``base`` is not used."""
    cols = {name: column(cur, name) for name in COLUMNS}
    if any(v is None or v.size == 0 or np.isnan(v).any() for v in cols.values()):
        return {}  # absent, or a result resumed from parts written before the columns existed
    solved = np.asarray(column(cur, "c"), dtype=float) > 0
    out = {"answers_distinct": float(cols["answers_distinct"].mean()),
           "answers_entropy": float(cols["answers_entropy"].mean())}
    if solved.any():
        for name in ("answers_distinct_correct", "answers_entropy_correct"):
            out[name] = float(cols[name][solved].mean())
    return out
