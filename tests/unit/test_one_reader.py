"""One configuration reader: every ``STREAMREC_*`` variable is a field of ``Settings``.

``streams/settings.py`` declares each variable once and reads it (``env_value``); every
command-line option takes its environment fallback from there (``setting_option``). No
other module of the shipped packages reads one itself, and no option asks click to read
one. (The bench, which is not shipped, has options of its own: ``STREAMREC_BENCH_*``.)
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import click

from streams.cli import main
from streams.cli.options import _SettingOption
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
READER = ROOT / "streams" / "settings.py"


def _names_a_variable(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith("STREAMREC_")
    if isinstance(node, ast.JoinedStr):
        return bool(node.values) and _names_a_variable(node.values[0])
    return False


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def readers(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, what) for every read of a STREAMREC_* variable, or click env fallback."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            getter = isinstance(func, ast.Attribute) and (
                (func.attr in {"get", "pop", "setdefault"} and _is_environ(func.value))
                or func.attr == "getenv"
            )
            if getter and node.args and _names_a_variable(node.args[0]):
                yield node.lineno, ast.unparse(node)
            for keyword in node.keywords:
                if keyword.arg == "envvar":
                    yield node.lineno, f"click option with envvar={ast.unparse(keyword.value)}"
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            if _names_a_variable(node.slice) and isinstance(node.ctx, ast.Load):
                yield node.lineno, ast.unparse(node)
        elif (
            isinstance(node, ast.Compare)
            and _names_a_variable(node.left)
            and any(_is_environ(c) for c in node.comparators)
        ):
            yield node.lineno, ast.unparse(node)


def test_no_module_but_the_settings_reads_a_streamrec_variable() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for package in ("streams", "online_model")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != READER
        for line, what in readers(ast.parse(path.read_text()))
    ]
    assert found == []


def test_the_check_sees_each_way_of_reading() -> None:
    code = """
import os, click
os.environ.get("STREAMREC_A")
os.getenv("STREAMREC_B")
os.environ["STREAMREC_C"]
"STREAMREC_D" in os.environ
click.option("--x", envvar="STREAMREC_E")
os.environ.get(f"STREAMREC_{name}_F")
"""
    assert len(list(readers(ast.parse(code)))) == 6


def test_every_option_with_a_variable_takes_it_from_the_settings() -> None:
    def walk(command: click.Command) -> Iterator[click.Parameter]:
        yield from command.params
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                yield from walk(sub)

    variables = {Settings.env_var(f) for f in Settings.__dataclass_fields__}
    options = [p for p in walk(main) if isinstance(p, _SettingOption)]
    assert len(options) > 60
    for option in options:
        assert Settings.env_var(option.setting) in variables
        assert option.envvar is None  # click itself reads nothing
    others = [p.name for p in walk(main) if p.envvar and not isinstance(p, _SettingOption)]
    assert others == []
