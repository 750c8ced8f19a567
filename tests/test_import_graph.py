"""The modules of ``billumy`` import each other without cycles.

The graph is read with :mod:`ast` from the source, so nothing is imported to check it. An edge
``a -> b`` means module ``a`` imports module ``b`` (``from pkg import name`` names the submodule
``pkg.name`` where one exists, else ``pkg``). Imports under ``if TYPE_CHECKING:`` are left out:
they never run. Imports inside functions are checked too, so a cycle cannot hide in one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import billumy

PACKAGE = Path(billumy.__file__).parent

# Deferred imports that still close a cycle, each to be moved away rather than added to.
KNOWN_DEFERRED: set[tuple[str, str]] = set()


def modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Every module under the package ``root``: dotted name -> (file, is a package)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        found[".".join(parts)] = (path, package)
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


# Blocks whose imports run when the module is imported, and those that run later if ever.
_RUN_NOW = (ast.ClassDef, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)
_DEFERRED = (ast.FunctionDef, ast.AsyncFunctionDef)


def _imports(body: Iterable[ast.stmt], *, nested: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run: at the top (in ``if``/``try`` blocks included), and with
    ``nested`` also those in function bodies; never the ``TYPE_CHECKING`` ones."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _type_checking(node.test):
                yield from _imports(node.body, nested=nested)
            yield from _imports(node.orelse, nested=nested)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _imports(block, nested=nested)
            for handler in node.handlers:
                yield from _imports(handler.body, nested=nested)
        elif isinstance(node, _RUN_NOW) or (nested and isinstance(node, _DEFERRED)):
            yield from _imports(node.body, nested=nested)


def import_graph(root: Path, *, nested: bool) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    found = modules(root)

    def known(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, (path, package) in found.items():
        here = name if package else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree.body, nested=nested):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in found else base
                    for alias in node.names
                ]
            for target in targets:
                module = known(target)
                if module is not None and module != name:
                    graph[name].add(module)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe(graph: dict[str, set[str]], component: list[str]) -> str:
    members = set(component)
    return "; ".join(f"{m} -> {sorted(graph[m] & members)}" for m in component)


def test_top_level_imports_have_no_cycle() -> None:
    graph = import_graph(PACKAGE, nested=False)
    assert len(graph) > 50  # the whole package was read
    found = cycles(graph)
    assert found == [], "\n".join(describe(graph, c) for c in found)


def test_no_cycle_hides_in_a_deferred_import() -> None:
    graph = import_graph(PACKAGE, nested=True)
    for source, target in KNOWN_DEFERRED:
        graph[source].discard(target)
    found = cycles(graph)
    assert found == [], "\n".join(describe(graph, c) for c in found)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    package = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "from . import c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "from pkg import a\n",
        },
    )
    assert cycles(import_graph(package, nested=False)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_checker_reads_deferred_and_type_checking_imports(tmp_path: Path) -> None:
    package = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/sub/a.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.b import B\n"
                "def f():\n"
                "    from ..c import g\n"
            ),
            "pkg/b.py": "from pkg.sub.a import f\n",
            "pkg/c.py": "from pkg.sub import a\n",
        },
    )
    assert cycles(import_graph(package, nested=False)) == []
    assert cycles(import_graph(package, nested=True)) == [["pkg.c", "pkg.sub.a"]]
