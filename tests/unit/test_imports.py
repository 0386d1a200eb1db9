"""Imports inside ``streams`` point one way: no package imports one that imports it back.

The graph is read from the source (every ``import`` and ``from ... import`` at any depth,
function-level and ``TYPE_CHECKING`` ones included), one node per package of ``streams``
(``streams.io``, ``streams.scorer``, ...) and per top-level module (``streams.settings``,
...). Nothing is imported, so a module that fails to import still shows its edges.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "streams"

#: Scripts run by path, never imported by the package; each sits above every package.
#: ``spark-submit`` runs ``streams/retrain/submit.py`` (README, "Retraining on Spark"), a
#: file that only starts the CLI.
ENTRY_SCRIPTS = {"streams/retrain/submit.py": {"streams.cli"}}

#: What ``streams/io`` (Kafka) and ``streams/state`` (Redis) may import from ``streams``:
#: themselves and the shared modules at the bottom, nothing that uses them.
SHARED = {
    "streams.api_tokens",
    "streams.durations",
    "streams.errors",
    "streams.records",
    "streams.settings",
    "streams.time_range",
}
LOWEST = ("streams.io", "streams.state")

Edges = dict[str, dict[str, list[str]]]


def _unit(module: str) -> str | None:
    """``streams.io.codec`` -> ``streams.io``; a module outside ``streams`` -> None."""
    parts = module.split(".")
    if parts[0] != "streams" or len(parts) < 2:
        return None
    return f"streams.{parts[1]}"


def _imported(path: Path, module: list[str]) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``, relative ones resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if path.name == "__init__.py" else module[:-1]
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            if name == "streams":  # from streams import settings
                found += [(node.lineno, f"streams.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, name))
    return found


def import_graph(package: Path = PACKAGE) -> Edges:
    """unit -> imported unit -> ``path:line`` of each import that makes the edge."""
    edges: Edges = defaultdict(lambda: defaultdict(list))
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).as_posix()
        if relative in ENTRY_SCRIPTS:
            continue
        module = list(path.relative_to(package.parent).with_suffix("").parts)
        source = _unit(".".join(module))
        for line, name in _imported(path, module):
            target = _unit(name)
            if source and target and target != source:
                edges[source][target].append(f"{relative}:{line}")
    return edges


def cycles(edges: Edges) -> list[list[str]]:
    """Strongly connected sets of more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for other in edges.get(unit, {}):
            if other not in index:
                visit(other)
                low[unit] = min(low[unit], low[other])
            elif other in stack:
                low[unit] = min(low[unit], index[other])
        if low[unit] == index[unit]:
            members: list[str] = []
            while not members or members[-1] != unit:
                members.append(stack.pop())
            if len(members) > 1:
                found.append(sorted(members))

    for unit in sorted(set(edges) | {t for targets in edges.values() for t in targets}):
        if unit not in index:
            visit(unit)
    return found


def test_the_graph_sees_function_level_imports() -> None:
    # streams/cli/scorer.py imports the scorer runtime inside its functions only.
    assert "streams.scorer" in import_graph()["streams.cli"]


def test_no_import_cycle_among_streams_packages() -> None:
    edges = import_graph()
    explained = [
        f"{' <-> '.join(members)}: "
        + "; ".join(
            f"{a} -> {b} ({', '.join(edges[a][b])})"
            for a in members
            for b in members
            if b in edges.get(a, {})
        )
        for members in cycles(edges)
    ]
    assert not explained, "\n".join(explained)


def test_io_and_state_import_only_themselves_and_shared_modules() -> None:
    edges = import_graph()
    upward = {
        f"{unit} -> {target}": where
        for unit in LOWEST
        for target, where in edges.get(unit, {}).items()
        if target not in SHARED and target not in LOWEST
    }
    assert not upward, upward


def test_entry_scripts_only_start_the_cli() -> None:
    for relative, allowed in ENTRY_SCRIPTS.items():
        module = relative.removesuffix(".py").split("/")
        imported = {_unit(name) for _, name in _imported(ROOT / relative, module)} - {None}
        assert imported <= allowed, (relative, imported)
