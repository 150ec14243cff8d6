"""Shared fixtures: the real data (skipped when absent) and one tiny base model per session."""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout, or wherever $RLBOUNDARY_SHARED_DATA points.
SHARED = pathlib.Path(os.environ.get("RLBOUNDARY_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(name: str) -> str:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the real data lives in ../shared/data)")
    return str(path)


@pytest.fixture(scope="session")
def omni_path() -> str:
    return shared_file("omni_math_rule.jsonl")


@pytest.fixture(scope="session")
def math500_path() -> str:
    return shared_file("math500.jsonl")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> str:
    """A fresh cache dir per test session, so CI always builds from scratch."""
    path = tmp_path_factory.mktemp("rlb-cache")
    os.environ["RLBOUNDARY_CACHE"] = str(path)
    return str(path)
