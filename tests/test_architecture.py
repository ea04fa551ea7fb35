"""The layout holds: every module imports alone, the import graph has no cycle, the packages
import only what docs/architecture.md lets them, no module keeps mutable state, and a column
is written down only in the files docs/architecture.md lists."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "catalog"

# What each part of the system may import at module level (lazy imports inside functions are
# how a part reaches a higher one without paying for it at import time). Kept in step with the
# package map in docs/architecture.md.
ALLOWED_IMPORTS: dict[str, set[str]] = {
    "errors": set(),
    "names": {"errors"},
    "db": {"errors", "names", "db"},
    "history": {"errors", "names", "db", "history"},
    "sync": {"errors", "names", "db", "resolve", "history", "sync"},
    "resolve": {"errors", "names", "db", "resolve", "query", "history"},
    "query": {"errors", "names", "db", "query"},
    "cache": {"errors", "names", "db", "resolve", "cache"},
    "api": {"errors", "db", "resolve"},
    "helm_compat": {"errors", "db", "api", "helm"},
    "helm": {"errors", "names", "db", "sync", "resolve", "query", "api", "helm"},
    "helm_plugin": {"helm"},
    "web": {"errors", "db", "resolve", "api", "web"},
    "cli": {
        "errors",
        "db",
        "resolve",
        "sync",
        "cache",
        "query",
        "history",
        "api",
        "cli",
        "__init__",
    },
    "__init__": {"api", "errors"},
    "__main__": {"cli"},
}
# Process-wide state that exists on purpose, with the reason.
ALLOWED_STATE = {
    ("catalog.helm_compat", "_CURRENT"): "HELM's registry functions are module-level by design",
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


MODULES = dict(_modules())


def _part(module: str) -> str:
    """The part of the system a module belongs to: its subpackage, or its top-level name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _top_level_imports(path: Path, module: str) -> set[str]:
    """Modules of the package imported when `module` is imported (not inside functions, not
    under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("catalog"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                if not base.startswith("catalog"):
                    continue
                for alias in node.names:
                    candidate = f"{base}.{alias.name}"
                    found.add(candidate if candidate in MODULES else base)

    visit(tree.body)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _top_level_imports(path, module) for module, path in MODULES.items()}


# `python -m catalog` runs the command line when imported, and catalog.helm_plugin loads the catalog
# into HELM (helm-run imports it): not modules to import alone.
ENTRY_POINTS = {"catalog.__main__", "catalog.cli.__main__", "catalog.helm_plugin"}


@pytest.mark.parametrize("module", sorted(set(MODULES) - ENTRY_POINTS))
def test_every_module_imports_alone(module: str) -> None:
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name == "catalog"
             or name.startswith("catalog.")}  # fmt: skip
    try:
        importlib.import_module(module)
    finally:
        for name in [n for n in sys.modules if n == "catalog" or n.startswith("catalog.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_the_import_graph_has_no_cycle() -> None:
    visiting: list[str] = []
    done: set[str] = set()

    def walk(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, "import cycle: " + " -> ".join([*visiting, module])
        visiting.append(module)
        for imported in sorted(GRAPH[module]):
            # A package's __init__ is imported by its own modules; that is not a cycle.
            if not module.startswith(imported + "."):
                walk(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(GRAPH):
        walk(module)


def test_each_part_imports_only_what_the_package_map_allows() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, imports in GRAPH.items()
        for imported in imports
        if _part(imported) not in ALLOWED_IMPORTS[_part(module)] and _part(imported) != "__init__"
    ]
    assert wrong == []


_MUTATORS = {
    "append",
    "extend",
    "insert",
    "update",
    "setdefault",
    "pop",
    "popitem",
    "clear",
    "add",
    "remove",
    "discard",
}


def _mutable_state(path: Path, module: str) -> list[str]:
    """Module-level names that something changes after import, and `global` statements."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module_names = {
        target.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            problems.extend(f"{module}: `global {name}`" for name in node.names)
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        for node in ast.walk(function):
            target: ast.expr | None = None
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                targets = (
                    node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                )
                for item in targets:
                    if isinstance(item, (ast.Subscript, ast.Attribute)):
                        target = item.value
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _MUTATORS
            ):
                target = node.func.value
            if (
                isinstance(target, ast.Name)
                and target.id in module_names
                and (module, target.id) not in ALLOWED_STATE
            ):
                problems.append(f"{module}:{node.lineno}: changes module-level {target.id}")
    return problems


def test_no_module_keeps_mutable_state() -> None:
    problems = [p for module, path in MODULES.items() for p in _mutable_state(path, module)]
    assert problems == []


def test_the_state_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "_cache = {}\n_seen = []\nCOUNT = 0\n"
        "def remember(key, value):\n    _cache[key] = value\n    _seen.append(key)\n"
        "def bump():\n    global COUNT\n    COUNT += 1\n",
        encoding="utf-8",
    )
    found = _mutable_state(sample, "sample")
    assert len(found) == 3 and any("global COUNT" in p for p in found)


# docs/architecture.md, "What a new column touches": the files that may name a column of
# `deployments`, and the columns no logic uses (pure data, like a new column would be).
COLUMN_FILES = {
    "db/schema.py",
    "sync/validation.py",
    "cli/read_commands.py",
    "helm_compat.py",
    "helm/shapes.py",
    "db/views.py",
}
DATA_ONLY_DEPLOYMENT_COLUMNS = ("max_request_length", "max_sequence_and_generated_tokens_length")


@pytest.mark.parametrize("column", DATA_ONLY_DEPLOYMENT_COLUMNS)
def test_a_deployment_column_is_written_only_where_this_list_says(column: str) -> None:
    from catalog.db.schema import DEPLOYMENTS

    assert column in DEPLOYMENTS.column_names
    naming = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if column in path.read_text(encoding="utf-8")
    }
    assert "db/schema.py" in naming
    assert naming <= COLUMN_FILES, f"{column} is also written in {sorted(naming - COLUMN_FILES)}"
