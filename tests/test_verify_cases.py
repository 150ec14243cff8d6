"""The verifier's cases from issue 7: exact numbers, percent, empty answers, several values,
the deciding stage and `rlboundary verify`. Each pair is checked both ways where the verdict is
symmetric; the expected verdict is written in the test."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from decimal import Decimal, localcontext

import pytest

from rlboundary.tasks import verify as V
from rlboundary.tasks import verify_numbers as N
from rlboundary.tasks.verify import Verdict, compute_score, extract_answer, verify_explain


def both_ways(a: str, b: str) -> tuple[Verdict, Verdict]:
    return V.verify(a, b), V.verify(b, a)


# ----------------------------------------------------------------------------- exact numbers
@pytest.mark.parametrize("a,b", [
    (r"\frac{1}{2^{98}}", r"\frac{1}{2^{99}}"),  # math-verify alone: equal
    (r"\frac{1}{2006!}", r"\frac{1}{2004!}"),
    ("0.0000001", "0.0000002"),
    ("0", "0.0000001"),
    (r"\frac{1}{2^{2016}}", r"2^{-2017}"),
    (r"(\frac{1}{2})^{3000}", r"\frac{1}{2}^{3001}"),
    ("0.33", r"\frac{1}{3}"),
    ("1.5", "1.6"),
    ("2^{100}", "2^{100}+1"),
    ("2^{10}", "1000"),
])
def test_distinct_numbers_are_wrong(a, b):
    assert both_ways(a, b) == (Verdict.WRONG, Verdict.WRONG)
    assert verify_explain(a, b).stage == "exact number"


@pytest.mark.parametrize("a,b", [
    (r"\frac{1}{2^{99}}", r"2^{-99}"),
    (r"\frac{1}{2^{99}}", r"\frac{1}{2}^{99}"),
    ("0.0000001", r"10^{-7}"),
    ("0.0000001", r"1 \times 10^{-7}"),
    (r"\frac{1}{3}", "0.333333"),  # a decimal within one part in a million
    (r"\frac{2}{3}", "0.6666667"),
    ("1.5", r"\frac{3}{2}"),
    ("1500", r"1.5 \cdot 10^{3}"),
    ("2^10", "1024"),  # as math-verify reads it
    (r"\frac{2006!}{2004!}", "4022030"),
    (r"3\frac{1}{2}", "3.5"),  # a mixed number, as math-verify reads it
    ("-0.5", r"-\frac12"),
    ("x=5", "5"),
    (r"10,\!080", "10080"),
    ("58,500", "58500"),
])
def test_equal_numbers_are_correct(a, b):
    assert both_ways(a, b) == (Verdict.CORRECT, Verdict.CORRECT)


def test_plain_number_reader():
    assert N.plain_number(r"\frac{1}{2^{3}}") == (N.Fraction(1, 8), False)
    assert N.plain_number("0.50") == (N.Fraction(1, 2), True)
    assert N.plain_number("5.0") == (5, False)
    for not_plain in (r"\sqrt{2}", r"\pi", "x", "9!!", "2^{1/2}", "2^{3}^{4}", r"\frac{1}{0}",
                      "2 3", "1,2", "0^{-1}", "2^{10^{6}}", "100000!", ""):
        assert N.plain_number(not_plain) is None, not_plain


def _decimal(x: N.Fraction) -> str:
    """``x`` as an exact decimal string (its denominator has no prime but 2 and 5)."""
    with localcontext() as ctx:
        ctx.prec = 200
        return format(Decimal(x.numerator) / Decimal(x.denominator), "f")


def _terminates(x: N.Fraction) -> bool:
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def test_property_numbers_a_factor_of_two_apart_never_match():
    """Issue 7, item 2: the whole kind, over random numbers of every size down to 1e-30."""
    rng = random.Random(7)
    for _ in range(150):  # powers of 1/2
        a, b = rng.sample(range(1, 5000), 2)
        forms = [rf"\frac{{1}}{{2^{{{a}}}}}", rf"2^{{-{a}}}", rf"\left(\frac{{1}}{{2}}\right)^{{{a}}}"]
        assert V.verify(rng.choice(forms), rf"\frac{{1}}{{2^{{{b}}}}}") is Verdict.WRONG, (a, b)
        assert V.verify(rng.choice(forms), rf"\frac{{1}}{{2^{{{a}}}}}") is Verdict.CORRECT, a
    for _ in range(60):  # factorials
        n, m = rng.sample(range(2, 3000), 2)
        assert V.verify(rf"\frac{{1}}{{{n}!}}", rf"\frac{{1}}{{{m}!}}") is Verdict.WRONG, (n, m)
        assert V.verify(rf"{n}!", rf"{n} \cdot {n - 1}!") is Verdict.CORRECT, n
    for _ in range(300):  # decimals down to 1e-30, against a decimal or a fraction
        e, k = rng.randint(1, 30), rng.randint(1, 999)
        x = N.Fraction(k, 10 ** (e + 3))
        y = x * rng.choice([2, 3, 10, 1000, N.Fraction(1, 2), N.Fraction(1, 7), N.Fraction(9, 4)])
        gold = _decimal(y) if _terminates(y) and rng.random() < 0.5 else \
            rf"\frac{{{y.numerator}}}{{{y.denominator}}}"
        assert V.verify(_decimal(x), gold) is Verdict.WRONG, (x, y, gold)
        assert V.verify(_decimal(x), rf"{k} \times 10^{{-{e + 3}}}") is Verdict.CORRECT, x


@pytest.mark.parametrize("a,b", [(r"\frac{\pi}{2^{100}}", r"\frac{\pi}{2^{99}}"),
                                 (r"\sqrt{2} \cdot 10^{-30}", r"\sqrt{2} \cdot 10^{-29}"),
                                 (r"x = \frac{\pi}{2^{98}}", r"\frac{\pi}{2^{99}}")])
def test_worker_vetoes_numbers_relatively_far_apart(a, b):
    """Not plain numbers, so math-verify decides; its absolute tolerance would call them equal."""
    assert both_ways(a, b) == (Verdict.WRONG, Verdict.WRONG)
    assert verify_explain(a, b).stage == "math-verify"
    assert V.verify(a, a.replace(r"\cdot", r"\times")) is Verdict.CORRECT


# ----------------------------------------------------------------------------- percent
@pytest.mark.parametrize("a,b,want", [
    ("50%", r"50\%", Verdict.CORRECT),
    (r"28 \text{ percent}", r"28\%", Verdict.CORRECT),
    ("28 percent", r"28\%", Verdict.CORRECT),
    (r"\text{28\%}", "28%", Verdict.CORRECT),
    ("50", r"50\%", Verdict.CORRECT),  # the mark is optional (the docstring says so)
    ("0.5", r"50\%", Verdict.CORRECT),  # ... read as its value too
    (r"\frac{1}{8}", r"12.5\%", Verdict.CORRECT),
    ("5", r"50\%", Verdict.WRONG),
    (r"0.5\%", "50", Verdict.WRONG),
    (r"51\%", r"50\%", Verdict.WRONG),
])
def test_percent(a, b, want):
    assert both_ways(a, b) == (want, want)


# ----------------------------------------------------------------------------- extraction
def test_empty_answers_never_win_over_a_later_answer():
    quoted = r"put the result in <answer></answer> tags ... Final: \boxed{5}"
    assert extract_answer(quoted) == "5"
    assert compute_score("x", quoted, "5")["acc"] is True
    assert extract_answer(r"<answer> </answer> so \boxed{ 7 }") == "7"
    assert extract_answer(r"\boxed{} then \boxed{5}") == "5"
    assert extract_answer(r"\boxed{5} then an empty \boxed{}") == "5"
    assert extract_answer(r"\boxed{5} then \boxed{$ $}") == "5"
    assert extract_answer("<answer>4</answer> then <answer></answer>") == "4"
    assert extract_answer("<answer>4</answer> then <answer>5</answer>") == "5"  # the last counts
    assert extract_answer(r"<answer>\boxed{}</answer> and \boxed{6}") == "6"
    assert extract_answer("<answer></answer>") is None
    assert extract_answer(r"\boxed{}") is None


# ----------------------------------------------------------------------------- several values
@pytest.mark.parametrize("a,b", [
    ("1, 2, 3", "1 and 2 and 3"),
    ("21, 16 or 11", "11, 16, 21"),
    (r"21, 16 \text{ or } 11", r"\{11, 16, 21\}"),
    ("x=1 or x=2", "1, 2"),
    ("(1, 2), (2, 1)", "(2, 1), (1, 2)"),
    (r"\pm\frac{9}{4}", r"\frac94, -\frac94"),
    (r"\{1\pm\sqrt{5},-2\}", r"-2, 1-\sqrt5, 1+\sqrt5"),
    ("(0, 1]", r"\left(0,1\right]"),
    (r"(\frac{1}{2}, 3)", "(0.5, 3)"),
])
def test_several_values_equal(a, b):
    assert both_ways(a, b) == (Verdict.CORRECT, Verdict.CORRECT)


@pytest.mark.parametrize("a,b", [
    ("1, 2", "1, 2, 3"),
    ("(1, 2), (1, 2)", "(1, 2), (2, 1)"),
    ("(1, 2)", "(2, 1)"),  # tuples are ordered
    ("(0, 1]", "(0, 1)"),  # and their brackets count
    ("[1, 2]", r"\{1, 2\}"),
    (r"\frac{9}{4}", r"\pm\frac{9}{4}"),
    (r"1, \frac{1}{2^{98}}", r"1, \frac{1}{2^{99}}"),
    ("2, 100", "2100"),
])
def test_several_values_different(a, b):
    assert both_ways(a, b) == (Verdict.WRONG, Verdict.WRONG)


def test_several_values_first_call_in_a_thread_is_not_charged_the_worker_start():
    """Items needing math-verify share one time limit, which starts once the worker is up."""
    import threading

    from rlboundary.tasks import verify_worker

    got = {}

    def work():
        got["verdict"] = V.verify("x+1, 2y", r"y \cdot 2, 1+x", timeout=1)
        verify_worker.shutdown()

    th = threading.Thread(target=work)
    th.start()
    th.join(120)
    assert got["verdict"] is Verdict.CORRECT


def test_single_gold_never_matches_a_list():
    for pred in ("1, 2", "2, 3", "2 or 3", r"\{2, 3\}", "x=2, x=3"):
        found = verify_explain(pred, "2")
        assert found.verdict is Verdict.WRONG and found.stage == "several values", pred
    assert V.verify("(1, 2)", "1, 2") is Verdict.CORRECT  # a tuple may list the solutions
    assert V.verify("1, 2", "(1, 2)") is Verdict.CORRECT  # and a list give a point


def test_several_boxes_when_the_gold_has_several_values():
    two = r"The roots are \boxed{1} and \boxed{2}."
    assert compute_score("x", two, "1, 2")["acc"] is True
    assert compute_score("x", two, r"\{2, 1\}")["acc"] is True
    assert compute_score("x", two, "1, 2")["pred"] == "1, 2"
    assert compute_score("x", two, "2")["acc"] is True  # one value expected: the last box
    assert compute_score("x", two, "1, 2, 3")["acc"] is False
    extra = r"First \boxed{5}. The roots are \boxed{1} and \boxed{2}."
    assert compute_score("x", extra, "1, 2")["acc"] is False  # no reward for every candidate
    tagged = r"\boxed{1} \boxed{2} <answer>1</answer>"
    assert compute_score("x", tagged, "1, 2")["acc"] is False  # the tagged answer counts


# ----------------------------------------------------------------------------- stage and CLI
@pytest.mark.parametrize("pred,gold,stage", [
    ("42", "42", "string"), ("007", "7", "integer"), (r"\frac12", "0.5", "exact number"),
    ("9^{9^{9}}", "42", "guard"), ("x+2", "2+x", "math-verify"), ("1, 2", "2", "several values"),
    (None, "1", "no answer"),
])
def test_verify_explain_stage(pred, gold, stage):
    assert verify_explain(pred, gold).stage == stage


def test_verify_explain_timeout():
    slow = r"\sum_{i=1}^{100000} i^{i}"  # runs far longer than 15 s in math-verify
    found = verify_explain(slow, "47", timeout=1)
    assert found.verdict is Verdict.TIMEOUT and found.stage == "timeout"


def test_cli_function_prints_verdict_answer_and_stage(tmp_path):
    from rlboundary.tasks.verify_cli import run

    out = io.StringIO()
    assert run([r"\frac{1}{2^{98}}", r"\frac{1}{2^{99}}"], out=out) == 1
    text = out.getvalue()
    assert "verdict  wrong" in text and "stage    exact number" in text
    assert r"answer   \frac{1}{2^{98}}" in text
    response = tmp_path / "response.txt"
    response.write_text(r"put it in <answer></answer> tags. So \boxed{\frac{1}{2}}")
    out = io.StringIO()
    assert run(["0.5"], text=str(response), out=out) == 0
    assert "verdict  correct" in out.getvalue() and r"answer   \frac{1}{2}" in out.getvalue()
    assert run(["only-one"], out=io.StringIO()) == 2


def test_cli_subcommand():
    out = subprocess.run([sys.executable, "-m", "rlboundary.cli", "verify", "50%", r"50\%"],
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "verdict  correct" in out.stdout and "stage    string" in out.stdout
    out = subprocess.run([sys.executable, "-m", "rlboundary.cli", "verify", "--text", "-", "2"],
                         input=r"\boxed{1}, \boxed{3}", check=False, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1 and "answer   3 (extracted from stdin)" in out.stdout


# ----------------------------------------------------------------------------- real data
@pytest.mark.data
def test_math500_gold_answers_self_equivalent_without_sympy(math500_path):
    import json

    from rlboundary.tasks.math_datasets import normalise_answer

    with open(math500_path) as f:
        answers = [normalise_answer(json.loads(line)["answer"]) for line in f]
    assert len(answers) == 500
    V.reset_stats()
    bad = [a for a in answers if not (V.is_equivalent(a, a)
                                      and V.is_equivalent(f"\\boxed{{{a}}}", a)
                                      and compute_score("x", f"so \\boxed{{{a}}}.", a)["acc"])]
    assert not bad, bad[:5]
    assert V.stats()["sympy_calls"] == 0
