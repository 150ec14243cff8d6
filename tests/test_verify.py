"""Tests for rlboundary.tasks.verify: extraction, equivalence, the guard, worker timeouts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlboundary.tasks import verify as V
from rlboundary.tasks import verify_worker as W
from rlboundary.tasks.verify import Verdict, compute_score, extract_answer, is_equivalent

# Verified to run for far longer than 15 s in math-verify, and not caught by the guard.
SLOW = r"\sum_{i=1}^{100000} i^{i}"


@pytest.fixture(scope="module", autouse=True)
def warm_worker():
    """Start this thread's worker (and the forkserver) before any timing is taken."""
    assert V.verify("x+1", "1+x") is Verdict.CORRECT
    yield
    V.shutdown()


# ----------------------------------------------------------------------------- extraction
def test_extract_answer_tags_last_wins():
    text = "<think>a</think> <answer> 1 </answer> more <answer>\n\\frac{3}{4} </answer> tail"
    assert extract_answer(text) == r"\frac{3}{4}"
    assert extract_answer("<answer>7</answer> then \\boxed{9}") == "7"


def test_extract_answer_boxed():
    assert extract_answer(r"so \boxed{\frac{1}{2}}.") == r"\frac{1}{2}"
    assert extract_answer(r"\boxed{1} and finally \boxed {x^{2}+\{1\}}") == r"x^{2}+\{1\}"
    assert extract_answer(r"\fbox{5}") == "5"
    assert extract_answer(r"\boxed{3} then a truncated \boxed{4") == "3"
    assert extract_answer("<answer>unclosed, so \\boxed{2}") == "2"


def test_extract_answer_none():
    for text in (None, "", "no answer here", "<answer>", r"\boxed{", "</answer><answer>"):
        assert extract_answer(text) is None


@pytest.mark.parametrize("text", [
    "{" * 1_000_000,
    "\\boxed{" * 140_000,
    "\\boxed{" + "{}" * 500_000,
    "<answer>" * 120_000 + "</answer>",
    "a" * 1_000_000 + "\\boxed{1}",
    "}" * 500_000 + "\\boxed{" + "{" * 500_000,
])
def test_extract_answer_linear_on_1mb(text):
    t = time.perf_counter()
    extract_answer(text)
    assert time.perf_counter() - t < 1.0


# ----------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("pred,gold", [
    (r"\frac{1}{2}", "0.5"),
    (r"\dfrac12", r"\frac{1}{2}"),
    (r"\tfrac{1}{2}", r"\frac{1}{2}"),
    ("2", r"\boxed{2}"),
    (r"\boxed{2}", "2"),
    ("x+1", "1+x"),
    (r"\{1, 2, 3\}", r"\{3,2,1\}"),
    ("(1, 2]", r"\left(1,2\right]"),
    (r"[0, \infty)", r"[0,\infty)"),
    (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}"),
    (r"90^\circ", "90"),
    (r"\text{Yes}", "Yes"),
    ("$5$.", "5"),
    (r"2^{2^{7}}", r"2^{128}"),
])
def test_equivalent(pred, gold):
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize("pred,gold", [
    ("3", "4"),
    ("(1,2)", "[1,2]"),
    (r"\frac{1}{3}", "0.5"),
    ("x+1", "x-1"),
    (r"\{1,2\}", r"\{1,2,3\}"),
])
def test_not_equivalent(pred, gold):
    assert not is_equivalent(pred, gold)


def test_verdicts_and_counters():
    V.reset_stats()
    assert V.verify(None, "1") is Verdict.UNPARSEABLE
    assert V.verify("  ", "1") is Verdict.UNPARSEABLE
    assert V.verify("2", r"\boxed{2}") is Verdict.CORRECT
    assert V.verify("9^{9^{9}}", "42") is Verdict.WRONG
    assert V.verify("9^{9^{9}}", "43") is Verdict.WRONG
    s = V.stats()
    assert s["calls"] == 5 and s["unparseable"] == 2 and s["exact_match"] == 1
    assert s["guarded"] == 2 and s["correct"] == 1 and s["sympy_calls"] == 0


@pytest.mark.parametrize("s,expected", [
    ("9^9^9", True), ("9^{9^{9}}", True), ("9^9^9^9", True), ("10^{10^{10}}", True),
    ("x^{10^{10}}", True), ("1000000!", True), ("(10^{6})!", True), ("{" * 60, True),
    ("1" * (V.MAX_LEN + 1), True), (r"\sum_{i=1}^{10^{100}} i", True),
    ("2^{2^{7}}", False), ("2^{2017}", False), ("2014!", False), ("(2n)! \\cdot 2^{n^2}", False),
    (r"\frac{1}{100 \cdot 100!^{2}}\binom{200}{99}", False), ("e^{23110}", False),
])
def test_guard(s, expected):
    assert V.risky(s) is expected


# ----------------------------------------------------------------------------- timeouts
def test_slow_pair_times_out_and_next_call_works():
    t = time.perf_counter()
    assert V.verify(SLOW, "42", timeout=1) is Verdict.TIMEOUT
    assert time.perf_counter() - t < 1 + W.HARD_GRACE + 1.0
    assert V.verify("0.25", r"\frac14", timeout=1) is Verdict.CORRECT
    t = time.perf_counter()  # a repeated pair is answered from the cache
    assert V.verify(SLOW, "42", timeout=1) is Verdict.TIMEOUT
    assert time.perf_counter() - t < 0.1


def test_hard_kill_restarts_worker(monkeypatch):
    """With the in-worker SIGALRM off, only killing the process can stop the comparison."""
    monkeypatch.setattr(W, "SOFT_LIMIT", False)
    monkeypatch.setattr(W, "HARD_GRACE", 0.2)
    before = V.stats()
    t = time.perf_counter()
    assert V.verify(SLOW, "43", timeout=1) is Verdict.TIMEOUT
    assert time.perf_counter() - t < 1 + 0.2 + 1.0
    assert V.verify("0.75", r"\frac34", timeout=2) is Verdict.CORRECT
    after = V.stats()
    assert after["worker_restarts"] == before["worker_restarts"] + 1
    assert after["timeouts"] == before["timeouts"] + 1


def test_worker_crash_scores_wrong_and_is_replaced(monkeypatch):
    monkeypatch.setattr(W, "SOFT_LIMIT", False)
    W.shutdown()
    assert V.verify("2+x", "x+2") is Verdict.CORRECT  # the pool has one live worker
    (pid,) = W.worker_pids()
    before = V.stats()
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    t = time.perf_counter()
    assert V.verify(SLOW, "46", timeout=30) is Verdict.WRONG
    assert time.perf_counter() - t < 5
    assert V.verify("0.2", r"\frac{1}{5}") is Verdict.CORRECT
    after = V.stats()
    assert after["crashes"] == before["crashes"] + 1
    assert after["worker_restarts"] == before["worker_restarts"] + 1


def test_compute_score_loaded_by_verl_from_a_file_path():
    """verl may load this file under another module name; workers must still start."""
    import_utils = pytest.importorskip("verl.utils.import_utils")
    fn = import_utils.load_extern_object(V.__file__, "compute_score")
    assert fn.__module__ != V.__name__
    assert fn("omni", r"\boxed{0.5}", r"\frac{1}{2}", extra_info={})["acc"] is True


def test_compute_score_keys_and_lists():
    out = compute_score("omni_math_rule", "<think>..</think><answer>\\frac{1}{2}</answer>", "0.5")
    assert out == {"score": 1.0, "acc": True, "pred": r"\frac{1}{2}", "timeout": False}
    out = compute_score("omni_math_rule", "no final answer", "3")
    assert out == {"score": 0.0, "acc": False, "pred": "", "timeout": False}
    out = compute_score("x", r"\boxed{7}", ["5", r"\[ \boxed{7} \]"], extra_info={"i": 1})
    assert out["acc"] is True and out["score"] == 1.0


def test_compute_score_in_thread_enforces_timeout():
    results = {}

    def work():
        t = time.perf_counter()
        results["slow"] = compute_score("omni", f"<answer>{SLOW}</answer>", "44", timeout=1)
        results["slow_s"] = time.perf_counter() - t
        results["ok"] = compute_score("omni", r"\boxed{x+1}", "1+x", timeout=1)
        V.shutdown()

    th = threading.Thread(target=work)
    th.start()
    th.join(60)
    assert not th.is_alive()
    assert results["slow"] == {"score": 0.0, "acc": False, "pred": SLOW, "timeout": True}
    # 2.5 s of slack: a new thread starts its own worker first.
    assert results["slow_s"] < 1 + W.HARD_GRACE + 2.5
    assert results["ok"]["acc"] is True


# ----------------------------------------------------------------------------- real data
def _omni_answers(path: str) -> list[str]:
    answers = []
    with open(path) as f:
        for line in f:
            raw = json.loads(line)["answer"]
            answers.append(extract_answer(raw) if "\\boxed" in raw else raw.strip())
    return answers


@pytest.mark.data
def test_omni_gold_answers_self_equivalent(omni_path):
    """`omni_path` (conftest) skips the test when ../shared/data is absent."""
    answers = _omni_answers(omni_path)
    assert len(answers) == 2821 and all(answers)
    V.reset_stats()
    t = time.perf_counter()
    bad = [a for a in answers if not (is_equivalent(a, a) and is_equivalent(f"\\boxed{{{a}}}", a))]
    elapsed = time.perf_counter() - t
    print(f"\nomni self-equivalence: {2 * len(answers)} checks in {elapsed:.2f}s, {V.stats()}")
    assert not bad, bad[:5]
    # Only the few gold answers with unbalanced braces (e.g. `\frac{11}{2^{20}`) make
    # `\boxed{<answer>}` unclosed and so miss the normalised path.
    unbalanced = sum(a.count("{") != a.count("}") for a in answers)
    assert unbalanced < 10 and V.stats()["sympy_calls"] <= unbalanced


# ----------------------------------------------------------------------------- hostile corpus
_MACROS = [r"\frac{1}{2}", r"\sqrt{2}", r"\int_0^1 x^2 dx", r"\sum_{i=1}^{10^{100}} i", r"\pi",
           r"\begin{matrix} 1 & 2 \\ 3 & 4 \end{matrix}", r"\log_2 8", r"e^{i\pi}", r"\infty",
           r"\binom{10}{3}", r"\sin(x)", r"\cdot", "+", "-", "=", ",", r"\le", "x", "y", "7",
           r"\left(", r"\right)", "{", "}", r"\text{apples}", r"\mathbb{R}", r"\prod_{k=1}^{5} k"]


def _hostile(rng: random.Random, i: int) -> str:
    """One adversarial answer; the kind cycles so that each appears about equally often."""
    kind, n = i % 12, rng.randint(2, 9)
    if kind == 0:  # unbraced towers 9^9^9^9
        return "^".join(str(rng.randint(2, 99)) for _ in range(rng.randint(3, 6)))
    if kind == 1:  # braced towers 9^{9^{9^{9}}}, sometimes unbalanced
        k = rng.randint(3, 5)
        return f"{n}^{{" * k + str(n) + "}" * rng.choice([k, k, k - 1, k + 1])
    if kind == 2:  # 60-120 deep nesting
        depth = rng.randint(60, 120)
        opener, closer = rng.choice([("{", "}"), ("(", ")"), (r"\frac{1}{", "}"), (r"\sqrt{", "}")])
        return opener * depth + "1" + closer * depth
    if kind == 3:  # long strings; 1 MB ones now and then
        unit = rng.choice(["1", "x+", "\\frac{", "9^", "é"])
        return unit * (1_000_000 // len(unit) if i % 240 == 3 else rng.randint(1001, 3000))
    if kind == 4:  # unicode garbage, lone surrogates included
        return "".join(chr(rng.randint(0x80, 0x2FFFF)) for _ in range(rng.randint(1, 40)))
    if kind == 5:  # random LaTeX
        return " ".join(rng.choice(_MACROS) for _ in range(rng.randint(1, 5)))
    if kind == 6:  # huge numbers
        return rng.choice([f"10^{{10^{{{n}}}}}", f"{10 ** n}!", f"({10 ** n})!", f"{n}!!",
                           f"{n}^{{{n}^{{{n}}}}}", f"10^{{{10 ** n}}}", f"({n}!)!"])
    if kind == 7:  # empty and lone delimiters
        return rng.choice(["", " ", "{", "}", "\\", "$", "$$", "\\boxed{", "}{", "\\frac{",
                           "\\left(", "^", "_", "&", "\\\\", "\x00", "\ufeff", "%", "\\]"])
    if kind == 8:  # random printable ASCII
        return "".join(chr(rng.randint(32, 126)) for _ in range(rng.randint(1, 30)))
    if kind == 9:  # slow in sympy but not caught by the guard
        return rng.choice([SLOW, r"\binom{1000000}{500000}", r"(10^{99999}+1)^{3000}"])
    return rng.choice([str(rng.randint(-100, 100)), f"\\frac{{{n}}}{{{n + 1}}}", f"{n}.{n}",
                       f"x={n}", f"({n}, {n + 1}]", f"\\{{{n},{n + 1}\\}}", f"\\sqrt{{{n}}}"])


@pytest.mark.slow
def test_hostile_corpus_no_exceptions_bounded_time():
    rng = random.Random(20240531)
    golds = ["42", r"\frac{1}{2}", r"x^2+1", r"\{1,2\}", r"(0, 1]"]
    corpus = [(i, rng.randrange(len(golds))) for i in range(10_000)]
    seeds = [rng.random() for _ in corpus]
    V.reset_stats()

    def check(item):
        (i, g), seed = item
        pred = _hostile(random.Random(seed), i)
        return V.verify(pred, golds[g], timeout=1)

    t = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        verdicts = list(pool.map(check, zip(corpus, seeds)))
    elapsed = time.perf_counter() - t
    s = V.stats()
    print(f"\nhostile corpus: {len(verdicts)} answers in {elapsed:.1f}s, {s}")
    assert all(isinstance(v, Verdict) for v in verdicts)
    assert s["calls"] == 10_000
    assert elapsed < 240


# ----------------------------------------------------------------------------- any caller
# Pairs only math-verify can decide (no string, integer or exact-number stage applies).
_MV_PAIRS = [("x+1", "1+x", True), (r"\sqrt{2}/2", r"\frac{\sqrt2}{2}", True),
             ("(x+1)^2", "x^2+2x+1", True), ("x-1", "x+1", False), (r"2\pi", r"\pi+\pi", True),
             (r"\sqrt{8}", r"3\sqrt{2}", False)]
_SCRIPT = ("from rlboundary.tasks.verify import compute_score, is_equivalent, stats\n"
           f"pairs = {_MV_PAIRS!r}\n"
           "print([is_equivalent(p, g) for p, g, _ in pairs])\n"
           "print(compute_score('x', r'so \\boxed{y+2}', '2+y')['acc'])\n"
           "print(stats()['sympy_calls'])\n")


def _check_script_output(out) -> None:
    assert out.returncode == 0, out.stderr
    verdicts, score, sympy_calls = out.stdout.strip().splitlines()
    assert verdicts == str([want for _, _, want in _MV_PAIRS])
    assert score == "True" and int(sympy_calls) == len(_MV_PAIRS) + 1


def test_script_without_main_guard_gets_math_verify_verdicts(tmp_path):
    """A script with no `if __name__ == "__main__":` guard, run in a fresh interpreter: workers
    must not re-import it (multiprocessing's spawn and forkserver would)."""
    script = tmp_path / "check.py"
    script.write_text(_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], check=False, text=True,
                         capture_output=True, cwd=tmp_path, timeout=120)
    _check_script_output(out)


def test_script_on_stdin_gets_math_verify_verdicts(tmp_path):
    out = subprocess.run([sys.executable, "-"], input=_SCRIPT, check=False, text=True,
                         capture_output=True, cwd=tmp_path, timeout=120)
    _check_script_output(out)


def _in_new_thread(fn):
    """Run ``fn`` in a fresh thread (so with a fresh worker slot); return or re-raise."""
    box = {}

    def work():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001
            box["error"] = e
        finally:
            W.shutdown()

    th = threading.Thread(target=work)
    th.start()
    th.join(120)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def test_worker_that_cannot_start_raises_with_its_reason(monkeypatch):
    """Not scored wrong: a verifier without workers would zero every reward that needs sympy."""
    W.shutdown()   # no idle worker left to lend: the next call must start one
    monkeypatch.setattr(W, "_COMMAND", "import sys; sys.stderr.write('no sympy here'); sys.exit(3)")
    with pytest.raises(V.VerifierUnavailable, match=r"exited with code 3(.|\n)*no sympy here"):
        _in_new_thread(lambda: V.verify("y+3", "3+y"))
    # The stages before math-verify need no worker, so they still work there.
    assert _in_new_thread(lambda: V.verify(r"\frac{1}{2}", "0.5")) is Verdict.CORRECT
    monkeypatch.setattr(W.sys, "executable", "/nonexistent/python")
    with pytest.raises(V.VerifierUnavailable, match="could not run '/nonexistent/python'"):
        _in_new_thread(lambda: V.verify("y+4", "4+y"))


def test_worker_start_time_is_recorded():
    times = W.start_times()
    assert times and all(0 < t < W.WORKER_START_TIMEOUT for t in times)


def test_worker_pipes_above_fd_1024():
    """Reward loops (Ray, verl) may hold over 1024 files; select() fails there, poll() does not."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        if hard != resource.RLIM_INFINITY and hard < 1400:
            pytest.skip("RLIMIT_NOFILE below 1400")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1400, hard))
    fds = []
    try:
        while not fds or fds[-1] < 1100:
            fds.extend(os.pipe())
        assert _in_new_thread(lambda: V.verify("z+5", "5+z")) is Verdict.CORRECT
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
