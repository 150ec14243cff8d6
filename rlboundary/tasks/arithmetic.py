"""Synthetic arithmetic chains: the embedded default task that a tiny model can learn on a CPU.

A problem is a chain of 1 to 6 operations over integers 1..9, evaluated LEFT TO RIGHT (no operator
precedence), e.g. ``4+7*3-2`` = ((4+7)*3)-2 = 31. Difficulty = number of operations.

The reference answer is a compact step-by-step trace in the study's tag format:
``<think>4+7=11 11*3=33 33-2=31</think><answer>31</answer>``

Why noisy pre-training traces: the study's finding needs a base model with broad but unreliable
support (low pass@1, high pass@256). We pre-train on a mixture of clean traces, traces with one
wrong step that later steps faithfully follow, direct answers with no steps, and steps with the
operands of + and * swapped. RL can then sharpen the clean mode.

Two correctness levels: the final answer (what the verifier rewards), and whole-trace validity
(every step's arithmetic right and each step chaining from the previous result), the automated
form of the study's manual check that correct answers came with correct chains of thought.
"""

from __future__ import annotations

import random
import re
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


def clean_steps(chain: Chain) -> list[str]:
    steps, acc = [], chain.operands[0]
    for op, b in zip(chain.ops, chain.operands[1:]):
        new = apply(acc, op, b)
        steps.append(f"{acc}{op}{b}={new}")
        acc = new
    return steps


def noisy_solution(chain: Chain, rng: random.Random, p_direct: float = 0.2,
                   p_error: float = 0.3, p_swap: float = 0.3) -> str:
    """One pre-training trace: clean, with a followed error, direct, and/or operand-swapped."""
    if rng.random() < p_direct:
        return format_solution([], chain.values()[-1])
    err_at = rng.randrange(len(chain.ops)) if rng.random() < p_error else -1
    steps, acc = [], chain.operands[0]
    for i, (op, b) in enumerate(zip(chain.ops, chain.operands[1:])):
        new = apply(acc, op, b)
        if i == err_at:
            new += rng.choice([-10, -2, -1, 1, 2, 10])
        lhs = f"{b}{op}{acc}" if op in "+*" and rng.random() < p_swap else f"{acc}{op}{b}"
        steps.append(f"{lhs}={new}")
        acc = new
    return format_solution(steps, acc)


def trace_valid(problem: str, completion: str) -> bool:
    """Whole-trace validity: steps parse, each is arithmetically right, chains from the previous
    result (operands of + and * may be swapped), uses the problem's operands in order, and the
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


def make_records(seed: int, n_train: int, n_test_per_difficulty: int, min_ops: int = 1,
                 max_ops: int = 6) -> list[Record]:
    """Deterministic train/test problems; test problems are distinct from train ones.

    Difficulty 1 has only 243 distinct problems, so the per-difficulty test count is capped at
    half of what exists there.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    records: list[Record] = []
    for d in range(min_ops, max_ops + 1):
        records += _draw(rng, d, min(n_test_per_difficulty, distinct(d) // 2), "test", seen)
    per_d = [n_train // (max_ops - min_ops + 1)] * (max_ops - min_ops + 1)
    per_d[-1] += n_train - sum(per_d)
    for d, k in zip(range(min_ops, max_ops + 1), per_d):
        used = sum(1 for r in records if r.difficulty == d)
        records += _draw(rng, d, min(k, distinct(d) - used), "train", seen)
    return records


def distinct(d: int) -> int:
    """How many distinct chains of d operations exist over operands 1..9."""
    return 9 ** (d + 1) * 3**d


def _draw(rng: random.Random, d: int, k: int, split: str, seen: set[str]) -> list[Record]:
    out = []
    while len(out) < k:
        chain = random_chain(rng, d)
        if chain.text in seen:
            continue
        seen.add(chain.text)
        out.append(Record(
            id=f"arith-{d}-{text_hash(chain.text, 10)}", problem=chain.text,
            answer=str(chain.values()[-1]), split=split, difficulty=float(d),
            domain="arithmetic", source="synthetic",
            metadata={"solution": format_solution(clean_steps(chain), chain.values()[-1])},
        ))
    return out


def pretraining_texts(seed: int, count: int, exclude: set[str], min_ops: int = 1,
                      max_ops: int = 6, **noise) -> list[tuple[str, str]]:
    """(prompt problem, noisy completion) pairs whose problems avoid `exclude` (held-out sets)."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        chain = random_chain(rng, rng.randint(min_ops, max_ops))
        if chain.text in exclude:
            continue
        out.append((chain.text, noisy_solution(chain, rng, **noise)))
    return out
