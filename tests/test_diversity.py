"""Answer diversity: hand-computed distinct counts and entropies, the answer key's
normalisation, and the per-problem columns the probe workers write."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rlboundary.probes import PROBES, answer_diversity
from rlboundary.tasks.verify import answer_key


def test_distinct_answers_and_entropy_by_hand():
    # problem 0: answers a, a, b -> 2 distinct, entropy -(2/3 ln 2/3 + 1/3 ln 1/3)
    # problem 1: no answer, no answer, c -> 1 distinct, entropy 0
    # problem 2: no sample with an answer -> 0 distinct, entropy 0
    # problem 3: four different answers -> 4 distinct, entropy ln 4
    problem = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3]
    key = [5, 5, 7, -1, -1, 3, -1, -1, 1, 2, 3, 4]
    distinct, entropy = answer_diversity(problem, key, 4)
    assert distinct.tolist() == [2, 1, 0, 4]
    h0 = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    np.testing.assert_allclose(entropy, [h0, 0.0, 0.0, math.log(4)], rtol=1e-12)


def test_answer_codes_are_per_problem():
    # the same code on two problems counts once for each
    distinct, entropy = answer_diversity([0, 1], [9, 9], 2)
    assert distinct.tolist() == [1, 1] and entropy.tolist() == [0.0, 0.0]


def test_bad_shapes_and_indices_raise():
    with pytest.raises(ValueError):
        answer_diversity([0, 1], [1], 2)
    with pytest.raises(ValueError, match="outside"):
        answer_diversity([0, 2], [1, 1], 2)


def test_dataset_means_and_correct_only_over_solved_problems():
    table = pd.DataFrame({"n": [4, 4, 4], "c": [2, 0, 4],
                          "answers_distinct": [3, 2, 1], "answers_entropy": [1.0, 0.5, 0.0],
                          "answers_distinct_correct": [1, 0, 1],
                          "answers_entropy_correct": [0.0, 0.0, 0.0]})
    out = PROBES.get("answers")(table)
    assert out == {"answers_distinct": 2.0, "answers_entropy": 0.5,
                   "answers_distinct_correct": 1.0, "answers_entropy_correct": 0.0}
    assert PROBES.get("answers")(table.drop(columns=["answers_entropy"])) == {}
    unsolved = table.assign(c=0)
    assert "answers_distinct_correct" not in PROBES.get("answers")(unsolved)


def test_answer_key_uses_the_verifiers_normalisation():
    assert answer_key("0.5") == answer_key("1/2") == answer_key("\\frac{1}{2}")
    assert answer_key("\\boxed{x + 1}") == answer_key("x+1")
    assert answer_key("") is None and answer_key(None) is None
    assert answer_key("2") != answer_key("3")


def test_probe_rows_carry_the_diversity_columns():
    from rlboundary.probing.rows import PROBLEM_COLUMNS, aggregate
    from rlboundary.tasks.schema import Record

    recs = [Record(id="p0", problem="1+1", answer="2", split="test"),
            Record(id="p1", problem="2+2", answer="4", split="test")]
    samples = pd.DataFrame({
        "problem_id": ["p0"] * 4 + ["p1"] * 4,
        "pred": ["2", "2.0", "3", "", "4", "5", "6", "7"],
        "correct": [True, True, False, False, True, False, False, False],
        "valid": [None] * 8, "timeout": [False] * 8, "finish_reason": ["stop"] * 8,
        "n_tokens": [3] * 8, "entropy_sum": [1.0] * 8, "nll_base": [1.0] * 8})
    out = aggregate(samples, recs, 4, has_trace=False)
    assert set(PROBLEM_COLUMNS) - {"dataset", "step", "checkpoint"} <= set(out.columns)
    assert out["answers_distinct"].tolist() == [2, 4]            # {2, 3}; {4, 5, 6, 7}
    assert out["answers_distinct_correct"].tolist() == [1, 1]    # "2" and "2.0" are one
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    np.testing.assert_allclose(out["answers_entropy"], [h, math.log(4)], rtol=1e-12)
    np.testing.assert_allclose(out["answers_entropy_correct"], [0.0, 0.0])
