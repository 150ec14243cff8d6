"""How the words of a command line become Hydra overrides of rlboundary/conf/config.yaml: a
recipe file, the ``base=PATH`` shorthand, and ``verl.KEY=VALUE`` for engine=verl."""

from __future__ import annotations

import os


def recipe_overrides(recipe: str | None) -> list[str]:
    """A recipe file (`# @package _global_`, config only) composed on top of conf/config.yaml:
    its folder's parent joins Hydra's search path and the folder becomes a config group."""
    if not recipe:
        return []
    path = os.path.abspath(recipe if recipe.endswith(".yaml") else recipe + ".yaml")
    if not os.path.exists(path):
        raise FileNotFoundError(f"recipe not found: {path}")
    folder = os.path.dirname(path)
    name = os.path.splitext(os.path.basename(path))[0]
    return [f"hydra.searchpath=[file://{os.path.dirname(folder)}]",
            f"+{os.path.basename(folder)}={name}"]


def recipe_keys(recipe: str | None) -> list[str]:
    """The config group a recipe adds (``+<folder>=<name>``), left out of sweep job names."""
    return [o.split("=")[0].lstrip("+") for o in recipe_overrides(recipe) if o.startswith("+")]


SHORTHANDS = {"base": "base.path"}


def verl_keys(overrides: list[str]) -> list[str]:
    """``verl.KEY=VALUE`` (any key of verl's ppo_trainer config, which ours does not declare)
    becomes ``++verl.KEY=VALUE``: added to the ``verl`` node, or replacing a recipe's value."""
    return [f"++{o.lstrip('+')}" if o.lstrip("+").startswith("verl.") else o
            for o in overrides]


def expand_shorthands(overrides: list[str]) -> list[str]:
    """`base=PATH` means an existing base model (the `base` group holds build settings)."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key in SHORTHANDS and ("/" in value or os.path.isdir(value)):
            o = f"{SHORTHANDS[key]}={value}"
        out.append(o)
    return out
