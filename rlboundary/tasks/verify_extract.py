"""Final-answer extraction and cheap string normalisation (part of
:mod:`rlboundary.tasks.verify`, which re-exports these).

Extraction follows the study's format (``<answer>..</answer>``) with ``\\boxed{}`` as the fallback
that Qwen-style models use; the last complete answer counts. Ours, not the MATH grader's
``last_boxed_only_string``: brace matching is a C-speed scan that stays linear on 1 MB hostile
text, and an empty tag pair or box (e.g. quoted from the prompt) is skipped. :func:`normalize`
is conservative (equal outputs mean equal answers); the MATH normaliser (``strip_string`` in
Hendrycks et al.'s code) goes further, e.g. it drops units and ``x=`` prefixes, which we leave to
the later stages.
"""

from __future__ import annotations

import itertools
import operator
import re

MAX_BOXES = 64  # boxed_answers looks at this many boxes at most, from the end
MAX_BOX_LEN = 8000  # ... and at most this many characters of each

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{(?!\s*\})")  # an empty \boxed{} is no answer
_BRACE_STEP = tuple(1 if c == ord("{") else -1 if c == ord("}") else 0 for c in range(256))


def _close_brace(s: str, i: int, limit: int | None = None) -> int:
    """Index of the brace matching the ``{`` at s[i] (looking at most ``limit`` characters on),
    or -1; a C-speed scan (~0.15 s per MB)."""
    chunk = s[i:] if limit is None else s[i:i + limit]
    steps = map(_BRACE_STEP.__getitem__, chunk.encode("latin-1", "replace"))
    try:
        return i + operator.indexOf(itertools.accumulate(steps), 0)
    except ValueError:
        return -1


_BLANK = re.compile(r"(?:\s|\$|\\[\[\]()]|\\(?:boxed|fbox)\s*\{\s*\}|\{\s*\}|\\[,;!: ]|\\q?quad|~)*")


def _blank(s: str) -> bool:
    """No answer in it: empty, or only delimiters (``$ $``, ``\\boxed{ }``, ``\\[ \\]``)."""
    return _BLANK.fullmatch(s) is not None


def _last_boxed(s: str, tries: int = 3) -> str | None:
    """Content of the last balanced, non-blank ``\\boxed{..}``/``\\fbox{..}``; a few unclosed or
    blank ones are skipped."""
    starts = [m.end() - 1 for m in _BOX.finditer(s)]
    for i in reversed(starts[-tries:]):
        j = _close_brace(s, i)
        if j >= 0 and not _blank(s[i + 1:j]):
            return s[i + 1:j]
    return None


def tagged_answer(text: str, tries: int = 16) -> str | None:
    """The last non-blank ``<answer>..</answer>``, stripped."""
    end = text.rfind("</answer>")
    for _ in range(tries):
        start = text.rfind("<answer>", 0, end) if end >= 0 else -1
        if start < 0:
            return None
        inner = text[start + len("<answer>"):end]
        if not _blank(inner):
            return inner.strip()
        end = text.rfind("</answer>", 0, start)
    return None


def extract_answer(text: str | None) -> str | None:
    """The last non-blank ``<answer>..</answer>``, else the last non-blank ``\\boxed{..}``,
    stripped; else None. An empty tag pair or box (say, quoted from the prompt's format) never
    wins over a later non-empty answer."""
    if not text:
        return None
    tagged = tagged_answer(text)
    if tagged is not None:
        return tagged
    boxed = _last_boxed(text)
    return boxed.strip() if boxed is not None else None


def boxed_answers(text: str) -> list[str]:
    """The non-blank ``\\boxed{}`` contents of ``text`` in order, repeats dropped (the last
    :data:`MAX_BOXES` boxes at most, each at most :data:`MAX_BOX_LEN` long)."""
    out, seen = [], set()
    for m in list(_BOX.finditer(text))[-MAX_BOXES:]:
        j = _close_brace(text, m.end() - 1, MAX_BOX_LEN)
        inner = text[m.end():j].strip() if j >= 0 else ""
        if inner and not _blank(inner) and normalize(inner) not in seen:
            seen.add(normalize(inner))
            out.append(inner)
    return out


def unwrap(s: str) -> str:
    """``\\[ \\boxed{x} \\]`` -> ``x``; anything without a box is only stripped."""
    s = s.strip()
    if "\\boxed" in s or "\\fbox" in s:
        inner = _last_boxed(s)
        if inner is not None and inner.strip():
            return inner.strip()
    return s


# ----------------------------------------------------------------------------- normalisation
_DROP = re.compile(r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\displaystyle|\\[!,;: ]|\\q?quad"
                   r"|\\\$|\$|\\\[|\\\]|\\\(|\\\)|~|\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\degree")
_SUBS = [(re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|operatorname)\s*\{([^{}]*)\}"), r"\1"),
         (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
         (re.compile(r"\\sqrt\s*(\d)"), r"\\sqrt{\1}"),
         (re.compile(r"\\(le|ge)(?![a-zA-Z])"), r"\\\1q"),
         (re.compile(r"\s+"), " "),
         # keep "pi r", "2 3" and "2, 100" (a list, where "2,100" is a number)
         (re.compile(r"(?<![A-Za-z0-9,]) | (?![A-Za-z0-9])"), "")]
_THIN_COMMA = re.compile(r",\s*\\!\s*(?=\d)")
_SPACE_THOUSANDS = re.compile(r"(?<![\d.,])[1-9]\d{0,2}(?: \d{3})+(?![\d.,])")
_PERCENT = re.compile(r"\s*(?:\\?%|(?<![A-Za-z])percent(?![A-Za-z]))")


_FRAC = re.compile(r"\\[dt]?frac(?![a-zA-Z])")
_ARG = re.compile(r"\s*(\\[A-Za-z]+|[A-Za-z0-9])")


def _frac_arg(s: str, i: int) -> tuple[str, int] | None:
    """The argument of ``\\frac`` starting at ``s[i]`` (spaces skipped) and where it ends: a
    braced group, or one letter, digit or command, as TeX reads ``\\frac n2``."""
    j = i
    while j < len(s) and s[j] == " ":
        j += 1
    if j < len(s) and s[j] == "{":
        end = _close_brace(s, j, 4000)
        return (s[j + 1:end], end + 1) if end >= 0 else None
    m = _ARG.match(s, i)
    return (m.group(1), m.end()) if m else None


def brace_fracs(s: str) -> str:
    """``\\dfrac {n^2} 4 + \\dfrac n 2`` -> ``\\frac{n^2}{4} + \\frac{n}{2}``: every ``\\frac``,
    ``\\dfrac`` and ``\\tfrac`` with both arguments braced. math-verify misreads brace-less
    arguments (it parsed that gold as the number 2), so both sides reach it in this form."""
    if "frac" not in s:
        return s
    out, i = [], 0
    for m in _FRAC.finditer(s):
        if m.start() < i:
            continue
        num = _frac_arg(s, m.end())
        den = _frac_arg(s, num[1]) if num else None
        if den is None:
            continue
        out.append(s[i:m.start()] + "\\frac{" + brace_fracs(num[0]) + "}{" + brace_fracs(den[0]) + "}")
        i = den[1]
    return "".join(out) + s[i:]


def normalize(s: str | None) -> str:
    """Cheap, conservative string normalisation: equal outputs mean equal answers."""
    s = brace_fracs((s or "").strip())
    while s.startswith(("\\boxed", "\\fbox")) and _close_brace(s, i := s.find("{")) == len(s) - 1:
        s = s[i + 1:-1].strip()
    if "\\!" in s:  # 11,\! 111: a thousands separator, not a list
        s = _THIN_COMMA.sub(",", s)
    s = _DROP.sub("", s).strip()
    for pattern, repl in _SUBS:
        s = pattern.sub(repl, s)
    if " " in s:  # 1 000 000: thousands groups separated by spaces (SI style)
        s = _SPACE_THOUSANDS.sub(lambda m: m.group().replace(" ", ""), s)
    if "%" in s or "percent" in s:  # one mark: %, \%, \text{ percent}, percent
        s = _PERCENT.sub(r"\\%", s)
    return s[:-1] if s.endswith(".") and not s.endswith("..") else s
