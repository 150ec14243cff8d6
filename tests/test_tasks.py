"""Tasks: the record schema, the Omni-MATH-Rule split, MATH500, the arithmetic task, export."""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from rlboundary.tasks import TASKS, arithmetic
from rlboundary.tasks.export import write_dataset
from rlboundary.tasks.math_datasets import load_math500, load_omni_math_rule, normalise_answer
from rlboundary.tasks.prompts import render
from rlboundary.tasks.schema import BadRecord, ids_sha256, read_jsonl


@pytest.mark.data
def test_omni_split_is_2000_821_deterministic_and_keeps_duplicates_together(omni_path):
    a = load_omni_math_rule(omni_path, seed=0)
    b = load_omni_math_rule(omni_path, seed=0)
    c = load_omni_math_rule(omni_path, seed=1)
    assert len(a) == 2821 and len({r.id for r in a}) == 2821
    test = [r for r in a if r.split == "test"]
    assert (len(a) - len(test), len(test)) == (2000, 821)
    assert [(r.id, r.split) for r in a] == [(r.id, r.split) for r in b]
    assert ids_sha256(test) != ids_sha256([r for r in c if r.split == "test"])
    side: dict[str, set] = {}
    for r in a:
        side.setdefault(r.problem, set()).add(r.split)
    assert len(side) == 2816 and all(len(s) == 1 for s in side.values())


@pytest.mark.data
def test_omni_boxed_answers_are_unwrapped(omni_path):
    raw = read_jsonl(omni_path, "omni")
    wrapped = [i for i, row in enumerate(raw) if "\\boxed" in row["answer"]]
    assert wrapped, "the shared file has boxed answers"
    records = load_omni_math_rule(omni_path)
    assert all("\\boxed" not in records[i].answer for i in wrapped)
    assert normalise_answer("\\[ \\boxed{\\frac{1}{2}} \\]") == "\\frac{1}{2}"


@pytest.mark.data
def test_math500_loads_as_test(math500_path):
    records = load_math500(math500_path)
    assert len(records) == 500 and {r.split for r in records} == {"test"}
    assert len({r.id for r in records}) == 500


def test_malformed_rows_name_the_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "x"}\n')
    with pytest.raises(BadRecord, match="row 2.*answer"):
        load_math500(str(bad))
    bad.write_text('{"problem": "1+1", "answer": "2"}\nnot json\n')
    with pytest.raises(BadRecord, match=r"bad.jsonl:2"):
        load_math500(str(bad))


def test_prepare_writes_verl_parquet_and_manifest(tmp_path):
    task = TASKS.get("arithmetic")
    records = task.load(seed=0, n_train=60, min_ops=1, max_ops=6, test_ops=[4, 6],
                        bands=BANDS, test_per_band=[5, 3, 2])
    man = write_dataset(task, records, str(tmp_path), {"seed": 0})
    frame = pd.read_parquet(tmp_path / "test.parquet")
    assert len(frame) == 30 and man["splits"]["train"]["count"] == 60
    row = frame.iloc[0]
    assert row["data_source"] == "arithmetic"
    assert row["reward_model"]["style"] == "rule"
    assert row["prompt"][0]["content"] == render("arithmetic", row["extra_info"]["problem"])
    assert json.loads((tmp_path / "manifest.json").read_text())["splits"]["test"][
        "ids_sha256"] == ids_sha256([r for r in records if r.split == "test"])
    assert list(frame["extra_info"].map(lambda e: e["index"])) == list(range(30))


def test_the_manifest_records_the_data_not_the_training_batch(tmp_path):
    """`data prepare` writes the dataset's own settings; data.train_batch_size is a training
    setting (a recipe's 256 would not be the default's 32 anyway) and stays out."""
    from rlboundary.cli import main

    assert main(["data", "prepare", "arithmetic", "--out", str(tmp_path / "a"),
                 f"cache_dir={tmp_path / 'cache'}", "data.n_train=20"]) == 0
    settings = json.loads((tmp_path / "a" / "manifest.json").read_text())["settings"]
    assert "train_batch_size" not in settings
    assert settings["name"] == "arithmetic" and settings["n_train"] == 20


def test_study_prompt_template_is_raw_text():
    text = render("r1_base", "What is 1+1?")
    assert text.startswith("A conversation between User and Assistant.")
    assert text.endswith("User: What is 1+1? Assistant:")


def test_arithmetic_evaluates_left_to_right():
    chain = arithmetic.parse_chain("4+7*3-2")
    assert chain.values() == [11, 33, 31]
    assert arithmetic.clean_steps(chain) == ["4+7=11", "11*3=33", "33-2=31"]


@pytest.mark.parametrize("completion,valid", [
    ("<think>4+7=11 11*3=33 33-2=31</think><answer>31</answer>", True),
    ("<think>7+4=11 3*11=33 33-2=31</think><answer>31</answer>", True),   # swapped + and *
    ("<think>4+7=11 11*3=33 2-33=-31</think><answer>-31</answer>", False),  # - not commutative
    ("<think>4+7=12 12*3=36 36-2=34</think><answer>34</answer>", False),  # followed error
    ("<think>4+7=11 11*3=33 33-2=31</think><answer>30</answer>", False),  # answer != last step
    ("<think></think><answer>31</answer>", False),                        # direct answer
    ("<think>4+7=11 11*3=33</think><answer>31</answer>", False),          # missing step
    ("4+7=11 11*3=33 33-2=31", False),                                     # no tags
    ("<think>4+7=11 11*3=(1*3=3)33 33-2=31</think><answer>31</answer>", True),  # partials
    ("<think>4+7=11 11*3=(1*3=4)33 33-2=31</think><answer>31</answer>", False),  # wrong one
    ("<think>4+7=(4+7=11)11 11*3=33 33-2=31</think><answer>31</answer>", False),  # of a +
])
def test_trace_validity(completion, valid):
    assert arithmetic.trace_valid("4+7*3-2", completion) is valid


def test_long_products_write_each_partial_product():
    # 3024*6 by hand, prefixes from the left: 3*6 = 18; 30*6 = 180 + 0*6 = 180;
    # 302*6 = 1800 + 2*6 = 1812; 3024*6 = 18120 + 4*6 = 18144
    assert arithmetic.long_product(3024, 6) == "3024*6=(3*6=18)(30*6=180)(302*6=1812)18144"
    assert arithmetic.long_product(-3024, 6) == "-3024*6=(3*6=18)(30*6=180)(302*6=1812)-18144"
    assert arithmetic.long_product(24, 6) == "24*6=(2*6=12)144"
    assert arithmetic.long_product(7, 3) == "7*3=21"
    chain = arithmetic.parse_chain("9*8*7-5")
    long = arithmetic.noisy_solution(chain, random.Random(0), 0.0, 0.0, 0.0, p_long=1.0)
    assert long == "<think>9*8=72 72*7=(7*7=49)504 504-5=499</think><answer>499</answer>"
    assert arithmetic.trace_valid(chain.text, long)


def test_without_long_products_the_traces_are_drawn_as_before():
    """p_long=0 (the base) draws nothing more, so the base's pre-training texts, and the base,
    are unchanged: the digest of 3000 texts as drawn before p_long existed."""
    import hashlib

    texts = arithmetic.pretraining_texts(0, 3000, set(), 1, 6, p_direct=0.2, p_error=0.3,
                                         p_swap=0.3)
    blob = "\n".join(a + "|" + b for a, b in texts).encode()
    assert hashlib.sha256(blob).hexdigest() == (
        "9540e18e0d46d62651088bc7aed26f47a50f45f5dc534e19e34558e7d6d4be19")


def test_noisy_traces_cover_every_kind():
    rng = random.Random(0)
    chain = arithmetic.parse_chain("4+7*3-2")
    sols = [arithmetic.noisy_solution(chain, rng) for _ in range(400)]
    valid = [arithmetic.trace_valid(chain.text, s) for s in sols]
    assert any(s.startswith("<think></think>") for s in sols)          # direct answers
    assert any(not v and "<answer>31<" not in s for s, v in zip(sols, valid))  # followed errors
    assert any("7+4=" in s for s in sols)                              # swapped operands
    assert 0.2 < sum(valid) / len(valid) < 0.8


BANDS = [[0, 99], [100, 999], [10000, 10**9]]


def test_arithmetic_split_is_disjoint_seeded_and_stratified():
    a = arithmetic.make_records(0, 120, 1, 6, (4, 6), BANDS, [3, 4, 2], [1, 2, 1])
    assert a == arithmetic.make_records(0, 120, 1, 6, (4, 6), BANDS, [3, 4, 2], [1, 2, 1])
    by = {s: [r for r in a if r.split == s] for s in ("train", "validation", "test")}
    assert (len(by["train"]), len(by["validation"]), len(by["test"])) == (120, 12, 27)
    problems = {s: {r.problem for r in rs} for s, rs in by.items()}
    assert sum(map(len, problems.values())) == len(a)  # pairwise disjoint, no duplicates
    for split, counts in (("test", [3, 4, 2]), ("validation", [1, 2, 1])):
        for d in (4, 5, 6):
            mags = [r.metadata["magnitude"] for r in by[split] if r.difficulty == d]
            got = [sum(lo <= m <= hi for m in mags) for lo, hi in BANDS]
            assert got == counts, (split, d, got)
    for r in by["test"]:  # the magnitude is the largest |running result| of the chain
        chain = arithmetic.parse_chain(r.problem)
        assert r.metadata["magnitude"] == max(abs(v) for v in chain.values())
        assert r.answer == str(chain.values()[-1])
    assert sorted({r.difficulty for r in by["train"]}) == list(range(1, 7))
    # More training problems never move the held-out sets.
    more = arithmetic.make_records(0, 400, 1, 6, (4, 6), BANDS, [3, 4, 2], [1, 2, 1])
    assert [r for r in more if r.split != "train"] == by["test"] + by["validation"]
    held = {r.problem for r in a}
    pre = arithmetic.pretraining_texts(0, 2000, held, 1, 6)
    assert not {p for p, _ in pre} & held
    assert {len(arithmetic.parse_chain(p).ops) for p, _ in pre} == set(range(1, 7))


def test_training_problems_spread_over_magnitude_bands_when_asked():
    """train_bands: n_train spread evenly over the (operations, band) pairs a chain can reach
    (2 operations reach at most 9*9*9 = 729, so not 1000..9999): 2 + 3 = 5 pairs of 60 / 5 =
    12; the held-out sets are those drawn without it."""
    plain = arithmetic.make_records(0, 60, 2, 3, (4, 6), BANDS, [3, 4, 2], [1, 2, 1])
    banded = arithmetic.make_records(0, 60, 2, 3, (4, 6), BANDS, [3, 4, 2], [1, 2, 1],
                                     train_bands=[[0, 99], [100, 999], [1000, 9999]])
    assert [r for r in banded if r.split != "train"] == [r for r in plain if r.split != "train"]
    train = [r for r in banded if r.split == "train"]
    cells = [(int(r.difficulty), next(i for i, (lo, hi) in enumerate([[0, 99], [100, 999],
                                                                       [1000, 9999]])
                                      if lo <= r.metadata["magnitude"] <= hi)) for r in train]
    assert {c: cells.count(c) for c in set(cells)} == {(2, 0): 12, (2, 1): 12, (3, 0): 12,
                                                       (3, 1): 12, (3, 2): 12}
    assert len({r.problem for r in banded}) == len(banded)


def test_arithmetic_bad_ranges_are_one_clear_error(monkeypatch):
    monkeypatch.setattr(arithmetic, "MAX_TRIES", 1000)
    with pytest.raises(ValueError, match="bad difficulty"):
        arithmetic.make_records(0, 10, 1, 6, (6, 4), BANDS, [1, 1, 1])
    with pytest.raises(ValueError, match="bad magnitude bands"):
        arithmetic.make_records(0, 10, 1, 6, (4, 6), BANDS, [1, 1])
    with pytest.raises(ValueError, match="widen the band"):  # 1 op: at most 9 * 9 = 81
        arithmetic.make_records(0, 10, 1, 1, (1, 1), [[1000, 2000]], [1])


@pytest.mark.data
def test_cli_prepare_omni_writes_2000_821(omni_path, tmp_path):
    from rlboundary.cli import main

    out = tmp_path / "omni"
    assert main(["data", "prepare", "omni_math_rule", "--source", omni_path, "--out",
                 str(out)]) == 0
    assert len(pd.read_parquet(out / "train.parquet")) == 2000
    test = pd.read_parquet(out / "test.parquet")
    assert len(test) == 821 and set(test["data_source"]) == {"omni_math_rule"}
    man = json.loads((out / "manifest.json").read_text())
    assert man["splits"]["test"]["count"] == 821 and len(man["splits"]["test"]["ids_sha256"]) == 64


def test_probes_read_the_split_the_config_names():
    from rlboundary.probing.inputs import load_dataset

    spec = {"name": "arithmetic", "seed": 0, "n_train": 30, "min_ops": 1, "max_ops": 6,
            "test_ops": [4, 6], "bands": BANDS, "test_per_band": [2, 1, 1],
            "val_per_band": [1, 1, 0]}
    _, test = load_dataset("arithmetic", {**spec, "probe_split": "test"}, ".", None)
    _, val = load_dataset("arithmetic", {**spec, "probe_split": "validation"}, ".", None)
    assert len(test) == 12 and len(val) == 6
    assert {r.split for r in test} == {"test"} and {r.split for r in val} == {"validation"}
    assert [r.id for r in val] == sorted(r.id for r in val)
    with pytest.raises(ValueError, match="no 'train2' problems"):
        load_dataset("arithmetic", {**spec, "probe_split": "train2"}, ".", None)
