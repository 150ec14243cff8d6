"""Synthetic arithmetic chains: the embedded default task that a tiny model can learn on a CPU.

A problem is a chain of operations over integers 1..9, evaluated LEFT TO RIGHT (no operator
precedence), e.g. ``4+7*3-2`` = ((4+7)*3)-2 = 31. Difficulty = number of operations; magnitude =
the largest absolute running result (31 here), i.e. how many digits the steps must carry.

The reference answer is a compact step-by-step trace in the study's tag format:
``<think>4+7=11 11*3=33 33-2=31</think><answer>31</answer>``

Why noisy pre-training traces: the study's finding needs a base model with broad but unreliable
support (low pass@1, pass@256 well above it). We pre-train on a mixture of clean traces, traces
with one wrong step that later steps faithfully follow, direct answers with no steps, and steps
with the operands of + and * swapped. RL can then sharpen the clean mode.

The held-out sets (``conf/data/arithmetic.yaml``): chains of 4 to 6 operations, stratified by
magnitude into three bands, each with its own role in the study's measurement:

- two digits (magnitude <= 99, 35% of the set): the base's reliable regime (pass@1 ~0.41,
  every problem solved within 256 samples). pass@1 rises here under RL.
- 100..199 (40%): the base is right only now and then (pass@1 ~0.06, pass@256 ~0.97):
  three-digit products are at the edge of a 141k-parameter model, and right answers often come
  from its noisy modes. RL sharpens onto the dominant, often wrong, mode and loses a sixth of
  these (the demo: 42 of 240 at step 200, 3 gained): the band where the reasoning boundary moves.
- five digits and more (>= 10,000, 25%): beyond the base (pass@256 ~0.0-0.05) and beyond RL;
  the problems "neither" solves, which give the set the study's profile (its base: pass@1 10.2,
  pass@256 69.1 on Omni-MATH-Rule) instead of a ceiling at pass@256 ~1.

Magnitudes 200..9,999 are left out on purpose. There both the base and the RL model sit at
success rates near 1/256, so whether a problem counts as solved flips from one draw of 256
samples to the next whichever model samples it: noise in the ledger, not RL's effect. The
earlier set (20 problems per difficulty 1..6, any magnitude) had the opposite flaw: the base
solved 117 of 120 at k=256, so the result rode on 3-6 problems.

How the design was chosen, on the validation split (``data.probe_split=validation``, drawn
like the test set), with the demo's GRPO run at step 100 (each line a fresh base build of the
first base, 4 heads of 16 dimensions; heads of 32, which vLLM's CPU attention needs, came later
and kept the design):
- chains of 7-8 operations (beyond pre-training) as the hard part: RL learnt them when
  trained on them (19 of 300 "RL only"), else left them at the 1/256 edge (churn);
- magnitude bands <100 / 100-999 / >=10^4 at actor lr 2e-4: diff@1 +0.050 [+0.037, +0.063],
  diff@256 -0.047 [-0.080, -0.014], RL only 6 of 300; at lr 4e-4 (the default since): +0.047
  [+0.031, +0.063], -0.110 [-0.150, -0.070], RL only 4, of which the 200-999 part gave most
  of the churn (4 gained, 15 lost of 74) and 100-199 none (15 lost of 61);
- bands <100 / 100-199 / >=10^4 at 20/50/30%: diff@1 +0.018 [+0.003, +0.033] (RL's pass@1
  gain comes from the two-digit band; 100-199 loses 37 of 150 problems), diff@256 -0.123
  [-0.163, -0.084], RL only 2 of 300; reweighted to the 35/40/25% mix: diff@1 +0.035 +- 0.023,
  diff@256 -0.105 +- 0.035, RL only 0.5%. That mix is the default;
- with that mix and another base build, RL learnt more of the 100-199 band and the loss at
  k=256 was smaller: step 100 diff@256 -0.040 [-0.062, -0.018], step 150 -0.070 [-0.100,
  -0.040], step 200 -0.067 [-0.095, -0.038], RL only 0 or 1 of 300, so the demo trains 200
  steps (the base differs between CPUs' float paths just as between these builds).
The test split gives the final numbers only (README).

The tiny teacher of the distillation half (conf/base/tiny_teacher.yaml) is pre-trained on clean
traces that write every product of a multi-digit number with its partial products
(:func:`long_product`, ``3240*6=(3*6=18)(32*6=192)(324*6=1944)19440``), a way of reasoning
the base never saw: with it the same architecture solves 62% of the five-digit band in 64
samples, where the base solves 0.7% (and the teacher with plain clean traces 15%).

Two correctness levels: the final answer (what the verifier rewards), and whole-trace validity
(every step's arithmetic right and each step chaining from the previous result), the automated
form of the study's manual check that correct answers came with correct chains of thought.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rlboundary.tasks.schema import Record, text_hash

OPS = "+-*"
_STEP = re.compile(r"^(-?\d+)([+\-*])(-?\d+)=(-?\d+)$")
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


@dataclass(frozen=True)
class Chain:
    operands: tuple[int, ...]  # (d + 1,)
    ops: tuple[str, ...]  # (d,)

    @property
    def text(self) -> str:
        out = str(self.operands[0])
        for op, b in zip(self.ops, self.operands[1:]):
            out += f"{op}{b}"
        return out

    def values(self) -> list[int]:
        """Running results after each operation, (d,)."""
        acc, vals = self.operands[0], []
        for op, b in zip(self.ops, self.operands[1:]):
            acc = apply(acc, op, b)
            vals.append(acc)
        return vals


def parse_chain(text: str) -> Chain:
    tokens = re.findall(r"\d+|[+\-*]", text)
    return Chain(tuple(int(t) for t in tokens[0::2]), tuple(tokens[1::2]))


def random_chain(rng: random.Random, n_ops: int, lo: int = 1, hi: int = 9) -> Chain:
    operands = tuple(rng.randint(lo, hi) for _ in range(n_ops + 1))
    return Chain(operands, tuple(rng.choice(OPS) for _ in range(n_ops)))


def format_solution(steps: list[str], answer: int | str) -> str:
    return f"<think>{' '.join(steps)}</think><answer>{answer}</answer>"


def long_product(acc: int, b: int) -> str:
    """The step ``acc*b`` with its partial products written out: the product of each prefix
    of ``|acc|``'s digits, from the left, in parentheses, before the result:
    ``3240*6=(3*6=18)(32*6=192)(324*6=1944)19440``. Each partial is ten times the one before
    plus the prefix's last digit times ``b``, all of it a few tokens back, which a model this
    size learns; a whole product of a 4-digit number it rarely gets right (nor the same
    partials without their prefixes: it loses count of the digits). Single-digit ``acc``:
    the plain step."""
    digits = str(abs(acc))
    partials, p = [], 0
    for i, d in enumerate(digits):
        p = 10 * p + int(d) * b
        partials.append(f"({digits[:i + 1]}*{b}={p})")
    sign = "-" if acc < 0 else ""
    return f"{acc}*{b}=" + "".join(partials[:-1]) + f"{sign}{p}"


def clean_steps(chain: Chain) -> list[str]:
    steps, acc = [], chain.operands[0]
    for op, b in zip(chain.ops, chain.operands[1:]):
        new = apply(acc, op, b)
        steps.append(f"{acc}{op}{b}={new}")
        acc = new
    return steps


def noisy_solution(chain: Chain, rng: random.Random, p_direct: float = 0.2,
                   p_error: float = 0.3, p_swap: float = 0.3, p_long: float = 0.0) -> str:
    """One pre-training trace: clean, with a followed error, direct, and/or operand-swapped;
    with probability ``p_long`` its products of a multi-digit number are written out with
    their partial products (:func:`long_product`; the tiny teacher's traces). With
    ``p_long=0`` the random draws are those of the traces before ``p_long`` existed, so the
    base model's pre-training texts, and the base, are unchanged."""
    if rng.random() < p_direct:
        return format_solution([], chain.values()[-1])
    err_at = rng.randrange(len(chain.ops)) if rng.random() < p_error else -1
    long = p_long > 0 and rng.random() < p_long
    steps, acc = [], chain.operands[0]
    for i, (op, b) in enumerate(zip(chain.ops, chain.operands[1:])):
        new = apply(acc, op, b)
        if i == err_at:
            new += rng.choice([-10, -2, -1, 1, 2, 10])
        if long and op == "*" and abs(acc) >= 10 and i != err_at:
            steps.append(long_product(acc, b))
            acc = new
            continue
        lhs = f"{b}{op}{acc}" if op in "+*" and rng.random() < p_swap else f"{acc}{op}{b}"
        steps.append(f"{lhs}={new}")
        acc = new
    return format_solution(steps, acc)


def trace_valid(problem: str, completion: str) -> bool:
    """Whole-trace validity: steps parse, each is arithmetically right, chains from the previous
    result (operands of + and * may be swapped; a product may carry its partial products, all
    right, as :func:`long_product` writes them), uses the problem's operands in order, and the
    final answer equals the last step. A direct answer with no steps is not a valid trace."""
    chain = parse_chain(problem)
    think = _THINK.findall(completion)
    answer = re.findall(r"<answer>(.*?)</answer>", completion, re.DOTALL)
    if not think or not answer:
        return False
    steps = think[-1].split()
    if len(steps) != len(chain.ops):
        return False
    acc = chain.operands[0]
    for step, op, b in zip(steps, chain.ops, chain.operands[1:]):
        if "(" in step:   # a product with its partials (long_product): they must be its own
            if step != long_product(acc, b) or op != "*":
                return False
            acc = apply(acc, op, b)
            continue
        m = _STEP.match(step)
        if not m or m.group(2) != op:
            return False
        x, y, r = int(m.group(1)), int(m.group(3)), int(m.group(4))
        if not ((x, y) == (acc, b) or (op in "+*" and (x, y) == (b, acc))):
            return False
        if r != apply(acc, op, b):
            return False
        acc = r
    return answer[-1].strip() == str(acc)


def magnitude(chain: Chain) -> int:
    """The largest absolute running result of a chain: how many digits its steps must carry."""
    return max(abs(v) for v in chain.values())


def make_records(seed: int, n_train: int, min_ops: int, max_ops: int, test_ops: Sequence[int],
                 bands: Sequence[Sequence[int]], test_per_band: Sequence[int],
                 val_per_band: Sequence[int] = (),
                 train_bands: Sequence[Sequence[int]] | None = None) -> list[Record]:
    """Deterministic train, validation and test problems, pairwise distinct.

    Train: ``n_train`` chains spread evenly over ``min_ops..max_ops`` operations, drawn
    uniformly (every magnitude); with ``train_bands`` (``[[lo, hi], ...]``, inclusive) spread
    evenly over (operations, band) pairs instead, leaving out the bands a chain of that many
    operations cannot reach (the distillation recipe's problems, where big products must not
    be rare). Held-out sets are stratified: for every difficulty in
    ``test_ops`` (inclusive bounds) and every magnitude band ``bands[b] = [lo, hi]``
    (inclusive bounds on :func:`magnitude`), ``test_per_band[b]`` test and
    ``val_per_band[b]`` validation chains (empty: no validation split). Held-out sets are
    drawn first, so more training problems never move them. Raises ``ValueError`` for an
    empty or inverted range, or per-band counts that do not match the bands.
    """
    lo, hi = int(test_ops[0]), int(test_ops[1])
    if not 1 <= min_ops <= max_ops or not 1 <= lo <= hi:
        raise ValueError(f"bad difficulty ranges: train {min_ops}..{max_ops}, test {lo}..{hi}")
    val_per_band = list(val_per_band) or [0] * len(bands)
    if not len(bands) == len(test_per_band) == len(val_per_band) or any(
            not 0 <= b[0] <= b[1] for b in bands):
        raise ValueError(f"bad magnitude bands {bands} for counts {test_per_band} / "
                         f"{val_per_band}")
    rng = random.Random(seed)
    seen: set[str] = set()
    records: list[Record] = []
    for split, counts in (("test", test_per_band), ("validation", val_per_band)):
        for d in range(lo, hi + 1):
            for band, k in zip(bands, counts):
                records += _draw(rng, d, k, split, seen, (int(band[0]), int(band[1])))
    cells = [(d, None) for d in range(min_ops, max_ops + 1)] if not train_bands else [
        (d, (int(b[0]), int(b[1]))) for d in range(min_ops, max_ops + 1) for b in train_bands
        if 9 ** (d + 1) >= int(b[0])]   # 9*9*...*9: the largest magnitude d operations reach
    per = [n_train // len(cells)] * len(cells)
    per[-1] += n_train - sum(per)
    for (d, band), k in zip(cells, per):
        used = sum(1 for r in records if r.difficulty == d)
        records += _draw(rng, d, min(k, distinct(d) - used), "train", seen, band)
    return records


def distinct(d: int) -> int:
    """How many distinct chains of d operations exist over operands 1..9."""
    return 9 ** (d + 1) * 3**d


#: draws tried for one held-out problem before a band is declared (nearly) empty
MAX_TRIES = 1_000_000


def _draw(rng: random.Random, d: int, k: int, split: str, seen: set[str],
          band: tuple[int, int] | None = None) -> list[Record]:
    out, tries = [], 0
    while len(out) < k:
        chain = random_chain(rng, d)
        tries += 1
        if tries > MAX_TRIES * max(1, k):
            raise ValueError(f"difficulty {d}: found {len(out)} of {k} chains with magnitude "
                             f"in {band} after {tries} draws; widen the band")
        if chain.text in seen or (band and not band[0] <= magnitude(chain) <= band[1]):
            continue
        seen.add(chain.text)
        out.append(Record(
            id=f"arith-{d}-{text_hash(chain.text, 10)}", problem=chain.text,
            answer=str(chain.values()[-1]), split=split, difficulty=float(d),
            domain="arithmetic", source="synthetic",
            metadata={"solution": format_solution(clean_steps(chain), chain.values()[-1]),
                      "magnitude": magnitude(chain)},
        ))
    return out


def pretraining_texts(seed: int, count: int, exclude: set[str], min_ops: int, max_ops: int,
                      **noise) -> list[tuple[str, str]]:
    """(prompt problem, noisy completion) pairs whose problems avoid `exclude` (held-out sets)."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        chain = random_chain(rng, rng.randint(min_ops, max_ops))
        if chain.text in exclude:
            continue
        out.append((chain.text, noisy_solution(chain, rng, **noise)))
    return out
