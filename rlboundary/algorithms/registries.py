"""The three extension points of ``rlboundary.algorithms``, one registry each (see the package
docstring for each entry's signature); the modules beside this one add their entries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlboundary.registry import Registry

GROUP_FILTERS: Registry[Callable[..., Any]] = Registry("group filter")
REWARD_SHAPERS: Registry[Callable[..., Any]] = Registry("reward shaper")
BASELINES: Registry[Callable[..., Any]] = Registry("reward baseline")
