"""The settings of a probe beside a trainer rlboundary did not launch, as rlboundary's own
command line would compose them: ``+preset=beside`` (conf/preset/beside.yaml), then what the
trainer tells (the model it starts from, where it writes, its response length), then the user's
recipe and overrides, which win.

The same list of overrides is what ``rlboundary probe`` takes, so a probe the trainer's hook
ran can be redone from the shell word for word (:func:`probe_command`).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from rlboundary.cli_args import expand_shorthands, recipe_overrides
from rlboundary.errors import UserError

PRESET = "+preset=beside"
_BARE = re.compile(r"^[\w./@:+\-]+$")


def _value(v: Any, key: str) -> str:
    """One value in Hydra's override grammar (strings quoted unless plain words or paths)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return v if _BARE.match(v) else "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x, key) for x in v) + "]"
    raise UserError(f"rlboundary.{key}: a {type(v).__name__} is not a setting value (give "
                    "numbers, strings, booleans or lists of them)")


def overrides_from(node: Mapping[str, Any] | None, prefix: str = "") -> list[str]:
    """A nested settings node as dotted overrides: ``{"n": 64, "probe": {"datasets":
    ["math500"]}}`` -> ``["n=64", "probe.datasets=[math500]"]``. A string under a config
    group's name (``data: math500``, ``sampler: vllm``) selects that group's file, as on the
    command line; ``recipe`` names a recipe file. Raises ``UserError`` for a value that is
    neither a scalar nor a list."""
    out: list[str] = []
    for key, value in (node or {}).items():
        name = f"{prefix}{key}"
        if name == "recipe":
            out += recipe_overrides(str(value))
        elif isinstance(value, Mapping):
            out += overrides_from(value, f"{name}.")
        else:
            out.append(f"{name}={_value(value, name)}")
    return out


def setting_keys(overrides: Sequence[str]) -> set[str]:
    """The dotted keys ``overrides`` set (``+``/``~`` prefixes and shorthands resolved)."""
    return {o.split("=", 1)[0].lstrip("+~") for o in expand_shorthands(list(overrides))}


def beside_overrides(user: Sequence[str], *, base_path: str | None, run_dir: str,
                     max_new_tokens: int | None = None) -> list[str]:
    """``+preset=beside``, the trainer's facts the user did not set, then ``user`` (a recipe's
    overrides and ``key=value`` words). Raises ``UserError`` when no base model is known."""
    user = expand_shorthands(list(user))
    mine = setting_keys(user)
    facts = {"base.path": base_path, "run_dir": run_dir, "sampling.max_new_tokens": max_new_tokens}
    if facts["base.path"] is None and "base.path" not in mine:
        raise UserError("the probe needs the model training starts from: pass base.path=PATH "
                        "(an HF directory or hub id)")
    return [PRESET] + [f"{k}={_value(v, k)}" for k, v in facts.items()
                       if v is not None and k not in mine] + user


def compose_beside(overrides: Sequence[str]) -> tuple[dict, dict]:
    """The composed config (plain) and the probe runner's settings for ``overrides`` (from
    :func:`beside_overrides`); the base model's hub id, if one, is resolved through the hub
    cache here. Raises ``UserError`` naming a bad setting."""
    from rlboundary import hub
    from rlboundary.commands import compose, plain, probe_settings

    cfg = compose(list(overrides))
    base = hub.resolve(cfg.base.path, "base.path")
    return plain(cfg), probe_settings(cfg, base)


def probe_command(overrides: Sequence[str], model: str | None = None,
                  step: int | None = None) -> list[str]:
    """``rlboundary probe`` words probing ``model`` as ``step`` (the base model as step 0 when
    ``model`` is None) with ``overrides``."""
    where = [] if model is None else [f"model={_value(model, 'model')}", f"step={int(step)}"]
    return ["rlboundary", "probe", *overrides, *where]


def shell_line(words: Sequence[str]) -> str:
    """``words`` as one line a shell runs."""
    return shlex.join(words)
