"""The house rules of ../shared/DESIGN.md ("Rooms and who may import whom"), read from the code's
own imports: no import circles, every arrow downward, no private names across modules, modules
of a readable size, each with a docstring.

Every ``import`` of an rlboundary module counts, the ones inside functions included: a lazy
import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "rlboundary"

#: The rooms from the bottom up; a room may import the rooms named for it (and itself).
#: "base" is the package's own small helpers (errors, atomic files, the registry, console,
#: models by hub id).
BASE = {"errors", "fileio", "registry", "console", "hydra_scope", "hub"}
ALLOWED = {
    "base": set(),
    "conf": set(),
    "tasks": {"base"},
    "algorithms": {"base"},
    "probes": {"base"},
    "results": {"base"},
    "samplers": {"base", "tasks"},
    "probing": {"base", "tasks", "probes", "results", "samplers"},
    "report": {"base", "tasks", "probes", "results"},
    "trainer": {"base", "tasks", "algorithms", "probes", "results", "samplers", "probing",
                "report"},
    "commands": {"base", "tasks", "algorithms", "probes", "results", "samplers", "probing",
                 "report", "trainer"},
    "cli": {"base", "tasks", "algorithms", "probes", "results", "samplers", "probing",
            "report", "trainer", "commands"},
    "integrations": {"base", "tasks", "algorithms", "probes", "results", "samplers", "probing",
                     "report", "trainer", "commands"},
}
#: Top-level modules that are not in BASE, by room.
TOP = {"commands": "commands", "settings_check": "commands", "cli_args": "commands",
       "cli_help": "cli", "sweep": "cli", "cli": "cli"}
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str:
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every rlboundary import in the file."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(_resolve(a.name), "") for a in node.names if a.name.startswith("rlboundary")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            if not base.startswith("rlboundary"):
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, "") if sub in MODULES else (_resolve(base), a.name))
    return [(m, n) for m, n in out if m != module]


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if (PKG / parts[1]).is_dir():
        return parts[1]
    return "base" if parts[1] in BASE else TOP[parts[1]]


def test_every_module_has_a_room():
    assert {room(m) for m in MODULES} <= set(ALLOWED)


def test_no_import_circles():
    """Tarjan's strongly connected components of the module graph: none larger than one."""
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w, _ in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in MODULES:
        if v not in index:
            visit(v)
    assert circles == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_arrows_point_down(module):
    here = room(module)
    up = sorted({f"{t} ({room(t)})" for t, _ in GRAPH[module]
                 if room(t) != here and room(t) not in ALLOWED[here]})
    assert up == [], f"{module} ({here}) may import only {sorted(ALLOWED[here])}"


def test_no_private_names_across_modules():
    private = sorted(f"{m} imports {t}.{n}" for m, edges in GRAPH.items() for t, n in edges
                     if n.startswith("_"))
    assert private == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_short_and_say_their_job(module):
    path = MODULES[module]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path}: split it (one job per module)"
    if text.strip() and path.parent.name != "conf":
        assert ast.get_docstring(ast.parse(text)), f"{path}: a docstring saying its one job"
