"""Prompt templates, one per task, used as raw text (no chat template).

The study starts RL from base models, so the prompt is plain text ending in "Assistant:"; we do
the same and never apply a tokenizer chat template.
"""

from __future__ import annotations

from rlboundary.registry import Registry

TEMPLATES: Registry[str] = Registry("prompt template")

# The reference study's verl training prompt (arXiv 2504.13837; see ../shared/data/README.md).
TEMPLATES.register("r1_base")(
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning "
    "process here </think> <answer> answer here </answer>. User: {} Assistant:"
)

# The tiny character-level model sees a compact prompt: the chain, then "?".
TEMPLATES.register("arithmetic")("{}?")


def render(template: str, problem: str) -> str:
    """Fill a registered template by name with a problem text."""
    return TEMPLATES.get(template).replace("{}", problem, 1)
