"""``online_model/`` is in layers whose imports point one way (and a test keeps it so).

From the bottom: ``errors``/``base`` (the contract), ``state`` (how a model's state is
laid out; imports no model), ``models`` (the recommenders), ``catalog`` (which pages may
be served), ``registry`` (names to classes), ``persist`` (the file formats), ``export``
(PMML), and ``evaluation``/``quality``/``checks``/``data`` beside them. Each module may
import only modules of its own layer or below.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import online_model

ROOT = Path(online_model.__file__).parent

#: Layers from the bottom up: a module imports from its own layer and those below.
LAYERS = [
    {"errors", "base", "data", "quality"},
    {"state"},
    {"models"},
    {"catalog"},
    {"registry"},
    {"persist"},
    {"export", "evaluation"},
    {"checks", "__init__"},
]
#: Imports allowed inside a function: optional dependencies only (none today).
OPTIONAL = frozenset[str]()


def modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(("online_model", *path.relative_to(ROOT).with_suffix("").parts))
        yield name.removesuffix(".__init__"), ast.parse(path.read_text())


def imported(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    """(module imported, whether at module level) for every import in ``tree``."""
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, id(node) in top


def layer_of(module: str) -> int:
    room = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def graph() -> dict[str, set[str]]:
    known = {name for name, _ in modules()}
    edges: dict[str, set[str]] = {}
    for name, tree in modules():
        targets = set()
        for module, _ in imported(tree):
            # "from online_model.models import covisit" names a module too
            while module and module not in known:
                module = module.rpartition(".")[0]
            if module.startswith("online_model") and module != name:
                targets.add(module)
        edges[name] = targets
    return edges


def test_no_import_cycle_among_online_model_modules() -> None:
    edges = graph()
    # Package __init__ files import their own submodules: that is not a cycle.
    for name in edges:
        edges[name] = {t for t in edges[name] if not t.startswith(name + ".")}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{name} -> {target}"
        for name, targets in graph().items()
        for target in targets
        if name != "online_model" and layer_of(target) > layer_of(name)
    ]
    assert upward == []


def test_no_function_level_imports_but_optional_dependencies() -> None:
    late = [
        f"{name} imports {module} inside a function"
        for name, tree in modules()
        for module, at_top in imported(tree)
        if not at_top and module.split(".")[0] not in OPTIONAL
    ]
    assert late == []


def test_the_package_exports_its_public_names() -> None:
    assert online_model.__all__ and all(hasattr(online_model, n) for n in online_model.__all__)
