"""DAPO's dynamic sampling: drop prompt groups whose rewards are all equal.

Source: Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale"
(arXiv 2503.14476), section 3.2. A group whose samples all score the same (all right or all
wrong) has zero group-normalised advantage, so it adds nothing to the gradient but dilutes the
batch; DAPO over-samples and keeps only informative groups until the batch is full. verl
implements this inside its DAPO trainer loop (``algorithm.filter_groups``), not as a function of
``core_algos``; this is the same rule as a pure function. Like verl, a group of one sample is
kept (its standard deviation is undefined).
"""

from __future__ import annotations

import numpy as np

from rlboundary.algorithms.registries import GROUP_FILTERS


@GROUP_FILTERS.register("nonconstant")
def keep_nonconstant_groups(metric: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``metric (B,)`` (e.g. ``acc`` or the score) and group ids ``index (B,)`` -> ``keep (B,)``.

    A sample is kept when its group has more than one sample and a non-zero standard deviation
    of ``metric``, or exactly one sample. Raises ``ValueError`` when the shapes differ or a
    metric is not finite (a NaN reward must not silently decide what is trained on).
    """
    metric = np.asarray(metric, dtype=np.float64)
    index = np.asarray(index)
    if metric.shape != index.shape or metric.ndim != 1:
        raise ValueError(f"metric {metric.shape} and index {index.shape} must be equal 1-D shapes")
    if not np.isfinite(metric).all():
        bad = int(np.flatnonzero(~np.isfinite(metric))[0])
        raise ValueError(f"non-finite metric {metric[bad]} for sample {bad} (group {index[bad]})")
    keep = np.zeros(len(metric), dtype=bool)
    for uid in np.unique(index):
        rows = index == uid
        keep[rows] = rows.sum() == 1 or np.std(metric[rows]) > 0
    return keep
