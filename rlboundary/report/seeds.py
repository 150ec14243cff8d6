"""Runs that differ only in their training seed, summarised across seeds.

One training run is one draw: on the tiny task a run's pass@256 difference from the base moves
by about as much between seeds as its own paired interval is wide, so a finding is stated over
seeds. `report --compare` groups the runs of a sweep whose overrides are the same once ``seed``
is left out (``job.json``, written by ``rlboundary train -m``; runs outside a sweep stand
alone), and gives per group with two or more seeds: the mean over seeds of diff@1 and
diff@k_max with a Student-t 95% interval across seeds (seeds as the unit: it carries training
noise, which the per-run intervals over problems do not), and how many seeds' own paired
intervals exclude zero in the direction of the mean.

Recipes: ``recipes/tiny/grpo_seeds.yaml`` (5 seeds) and ``recipes/tiny/six_algorithms_seeds.yaml``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rlboundary import probes

SEED_KEYS = ("seed", "+seed", "++seed")


def _overrides(run: Path) -> list[str] | None:
    job = run / "job.json"
    if not job.exists():
        return None
    try:
        return list(json.loads(job.read_text()).get("overrides", []))
    except (OSError, ValueError):
        return None


def _split_seed(overrides: list[str]) -> tuple[frozenset[str], str | None]:
    """(the overrides without the seed, the seed's value or None)."""
    rest, seed = set(), None
    for o in overrides:
        key, _, value = o.partition("=")
        if key in SEED_KEYS:
            seed = value
        else:
            rest.add(o)
    return frozenset(rest), seed


def seed_groups(runs: dict[str, Path]) -> dict[str, list[str]]:
    """{group name: run labels} for runs whose sweep overrides differ only in ``seed``. A
    group is named by what sets it apart from the other runs (the overrides not shared by
    every run; "all runs" when nothing does). Runs outside a sweep, and sweep runs that set
    no seed, each form a group of one, named by their label."""
    split = {label: _split_seed(over) for label, run in runs.items()
             if (over := _overrides(run)) is not None}
    seeded = [rest for rest, seed in split.values() if seed is not None]
    common = frozenset.intersection(*seeded) if seeded else frozenset()
    groups: dict[str, list[str]] = {}
    for label in runs:
        rest, seed = split.get(label, (frozenset(), None))
        name = (",".join(sorted(rest - common)) or "all runs") if seed is not None else label
        groups.setdefault(name, []).append(label)
    return groups


def seed_table(df: pd.DataFrame, groups: dict[str, list[str]]) -> pd.DataFrame:
    """One row per group of two or more seeds, from ``compare.compare_table``'s rows.

    Columns: ``group``, ``seeds``, and for k in (1, k_max): ``diff@k`` (mean over seeds),
    ``diff@k_lo``/``_hi`` (Student-t 95% across seeds), ``diff@k_min``/``_max`` (the seeds'
    extremes), ``diff@k_below``/``_above`` (seeds whose own paired interval lies wholly
    below / above zero). Empty when no group has two runs.
    """
    k = df.attrs["k"]
    by_run = df.set_index("run")
    rows = []
    for name, labels in groups.items():
        if len(labels) < 2:
            continue
        row: dict = {"group": name, "seeds": len(labels)}
        for kk in (1, k):
            sub = by_run.loc[labels]
            d = sub[f"diff@{kk}"].to_numpy(float)
            row[f"diff@{kk}"], row[f"diff@{kk}_lo"], row[f"diff@{kk}_hi"] = probes.mean_band(d)
            row[f"diff@{kk}_min"], row[f"diff@{kk}_max"] = float(d.min()), float(d.max())
            row[f"diff@{kk}_below"] = int((sub[f"diff@{kk}_hi"] < 0).sum())
            row[f"diff@{kk}_above"] = int((sub[f"diff@{kk}_lo"] > 0).sum())
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(k=k)
    return out


def seed_lines(table: pd.DataFrame) -> list[str]:
    """The seed table as text lines, one per group (for the console and the README)."""
    k = table.attrs["k"]
    out = []
    for _, r in table.iterrows():
        cells = []
        for kk in (1, k):
            cells.append(f"diff@{kk} {r[f'diff@{kk}']:+.3f} [{r[f'diff@{kk}_lo']:+.3f}, "
                         f"{r[f'diff@{kk}_hi']:+.3f}] (seeds {r[f'diff@{kk}_min']:+.3f}.."
                         f"{r[f'diff@{kk}_max']:+.3f}; CI > 0: {r[f'diff@{kk}_above']}, "
                         f"CI < 0: {r[f'diff@{kk}_below']})")
        out.append(f"{r['group']}: {int(r['seeds'])} seeds, " + ", ".join(cells))
    return out

