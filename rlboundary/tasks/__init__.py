"""Tasks: datasets behind one record schema, their prompt templates, and the verifier.

Registry `TASKS` maps a name to a `Task`; adding a dataset is one file that registers a Task plus
one `conf/data/<name>.yaml`. Settings (paths, seeds, sizes) arrive as keyword arguments from the
CLI, which is the only reader of Hydra.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rlboundary.registry import Registry
from rlboundary.tasks import arithmetic, math_datasets
from rlboundary.tasks.schema import BadRecord, Record

TASKS: Registry[Task] = Registry("task")


@dataclass(frozen=True)
class Task:
    name: str
    load: Callable[..., list[Record]]  # (**data_cfg) -> records
    template: str  # a name in prompts.TEMPLATES
    ability: str = "math"
    # Optional whole-trace validity check (problem text, completion) -> bool.
    trace_check: Callable[[str, str], bool] | None = None


def _load_omni(source=None, cache_dir=".", seed=0, n_test=821, **_):
    path = math_datasets.resolve_source(source, math_datasets.OMNI_URL, cache_dir,
                                        "omni_math_rule.jsonl")
    return math_datasets.load_omni_math_rule(path, seed=seed, n_test=n_test)


def _load_math500(source=None, cache_dir=".", **_):
    path = math_datasets.resolve_source(source, math_datasets.MATH500_URL, cache_dir,
                                        "math500.jsonl")
    return math_datasets.load_math500(path)


def _load_arithmetic(seed, n_train, min_ops, max_ops, test_ops, bands, test_per_band,
                     val_per_band=(), train_bands=None, **_):
    return arithmetic.make_records(seed, n_train, min_ops, max_ops, test_ops, bands,
                                   test_per_band, val_per_band, train_bands)


TASKS.register("omni_math_rule")(Task("omni_math_rule", _load_omni, "r1_base"))
TASKS.register("math500")(Task("math500", _load_math500, "r1_base"))
TASKS.register("arithmetic")(Task("arithmetic", _load_arithmetic, "arithmetic", "arithmetic",
                                  arithmetic.trace_valid))

__all__ = ["TASKS", "BadRecord", "Record", "Task"]
