"""``rlboundary verify``: why one sample was scored as it was.

    rlboundary verify PRED GOLD             compare an extracted answer with the gold
    rlboundary verify --text FILE GOLD      extract the answer from a whole response first
                                            (FILE ``-``: standard input)

Prints the verdict, the answer as compared, the gold, the stage that decided (string, integer,
several values, guard, exact number, math-verify, timeout) and a note; exits 0 when correct,
1 when not, 2 on a usage error, 3 when no math-verify worker can start. A PRED that starts with
``-`` and is not a plain number goes after ``--``: ``rlboundary verify -- -\\sqrt2 GOLD``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def run(answers: list[str], text: str | None = None, timeout: float | None = None,
        out: TextIO | None = None) -> int:
    """The whole command; ``answers`` is [PRED, GOLD], or [GOLD] with ``text`` (a file path)."""
    from rlboundary.tasks.verify import (
        Verdict,
        VerifierUnavailable,
        extract_prediction,
        verify_explain,
    )

    out = out or sys.stdout
    if len(answers) != (1 if text is not None else 2):
        print("usage: rlboundary verify PRED GOLD | rlboundary verify --text FILE GOLD",
              file=sys.stderr)
        return 2
    if text is not None:
        try:
            if text == "-":
                response = sys.stdin.read()
            else:
                with open(text, encoding="utf-8", errors="replace") as f:
                    response = f.read()
        except OSError as e:
            print(f"rlboundary verify: cannot read {text}: {e}", file=sys.stderr)
            return 2
        gold = answers[0]
        pred = extract_prediction(response, gold)
    else:
        pred, gold = answers
    from rlboundary.tasks import verify_worker

    started, t0 = len(verify_worker.start_times()), time.perf_counter()
    try:
        found = verify_explain(pred, gold, timeout)
    except VerifierUnavailable as e:
        print(f"rlboundary verify: {e}", file=sys.stderr)
        return 3
    seconds = time.perf_counter() - t0
    where = f" (extracted from {'stdin' if text == '-' else text})" if text is not None else ""
    rows = [("verdict", found.verdict.value),
            ("answer", (found.answer if found.answer is not None else "(none found)") + where),
            ("gold", found.gold),
            ("stage", found.stage)]
    if found.detail:
        rows.append(("note", found.detail))
    new_workers = verify_worker.start_times()[started:]
    rows.append(("time", f"{seconds:.3f} s" + (f" (starting the math-verify worker took "
                                               f"{new_workers[-1]:.1f} s)" if new_workers else "")))
    for key, value in rows:
        print(f"{key:<8} {value}", file=out)
    return 0 if found.verdict is Verdict.CORRECT else 1
