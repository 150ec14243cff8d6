"""Composing a config while Hydra runs a job, and Hydra's errors in one line.

Inside a ``train -m`` job Hydra's global state is taken: ``initialize_config_module`` refuses to
start ("GlobalHydra is already initialized"). Composing another config there (a probe dataset's,
verl's ``ppo_trainer``) needs that state set aside and put back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def own_hydra() -> Iterator[None]:
    """Run the block with Hydra's global state cleared; restore the job's state after it."""
    from hydra.core.global_hydra import GlobalHydra

    saved = GlobalHydra.instance().hydra
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        if saved is not None:
            GlobalHydra.instance().initialize(saved)


def first_line(error: BaseException) -> str:
    """The first line of a Hydra / OmegaConf error (its type name when it has no text)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]

