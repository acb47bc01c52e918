"""The layers, read from the code (an AST walk, no import of the product): each rule is a function
returning its violations, run on the real tree and, planted, on a copy of it.

1. Domain and shared are plain Python: ``hub/domain`` and ``shared`` import no web, socket, DICOM
   network or database library, and nothing of the hub but ``hub.domain`` and ``shared``; the
   infrastructure under the components (``teleconsult`` but its CLI, ``teleconsult.cli``) and
   ``config`` import no component (hub, spoke, bridge).
2. Edges go through services: a module that serves routes or Socket.IO events (it makes a
   ``Blueprint`` or subclasses ``Namespace``) imports neither SQLAlchemy nor a persistence module
   (models for annotations only, under ``if TYPE_CHECKING:``).
3. No module imports another module's private names (``from m import _x``, ``m._x``), nor a
   dependency's private module, except pynetdicom's behind ``dicom_bridge/pynetdicom_compat.py``.
4. No import cycle between modules, nor between packages (TYPE_CHECKING imports count).

Run alone: ``.venv/bin/python -m pytest tests/unit/test_layering.py -q``.
"""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "spoke", "dicom_bridge", "shared", "teleconsult", "config", "deploy")
FORBIDDEN_IN_DOMAIN = (
    "flask",
    "flask_socketio",
    "flask_babel",
    "socketio",
    "pynetdicom",
    "sqlalchemy",
    "eventlet",
    "requests",
)
PURE = {"hub.domain": ("hub.domain", "shared"), "shared": ("shared",)}
COMPONENTS = ("hub", "spoke", "dicom_bridge")
INFRASTRUCTURE = ("teleconsult", "config")  # below the components; teleconsult.cli is above them
CLI = "teleconsult.cli"
# The one module allowed to reach into a dependency's internals (rule 3).
PRIVATE_DOORS = {"dicom_bridge.pynetdicom_compat": ("pynetdicom",)}


@dataclass(frozen=True)
class Import:
    module: str  # the module imported from (absolute)
    name: str | None  # the name taken from it (``from module import name``), None for ``import``
    line: int
    type_checking: bool  # inside ``if TYPE_CHECKING:``


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def package(self) -> str:
        """The unit of rule 4's package graph: a subpackage (``hub.services``), else the module
        itself (a flat package's modules, ``hub.app``, count one by one:
        ``teleconsult`` holds both the infrastructure under the components and the CLI above)."""
        parts = self.name.split(".")
        if self.path.name == "__init__.py" or len(parts) < 2:
            return self.name if self.path.name == "__init__.py" else parts[0]
        return ".".join(parts[:-1]) if len(parts) > 2 else self.name


def load(root: Path) -> dict[str, Module]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            modules[name] = Module(name, path, ast.parse(path.read_text(), str(path)))
    return modules


def imports(module: Module) -> Iterator[Import]:
    checking = {
        id(inner)
        for node in ast.walk(module.tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, None, node.lineno, id(node) in checking)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.name.split(".")
                if module.path.name != "__init__.py":
                    package.pop()
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                yield Import(base, alias.name, node.lineno, id(node) in checking)


def _first_party(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def _resolve(modules: dict[str, Module], imported: Import) -> str | None:
    """The first-party module an import names (``from pkg import module`` included)."""
    if imported.name and f"{imported.module}.{imported.name}" in modules:
        return f"{imported.module}.{imported.name}"
    name = imported.module
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _where(module: Module, line: int) -> str:
    return f"{module.name}:{line}"


# -- rule 1 ----------------------------------------------------------------------------------------


def domain_violations(modules: dict[str, Module]) -> list[str]:
    found = []
    for module in modules.values():
        infrastructure = module.name.split(".")[0] in INFRASTRUCTURE and not (
            module.name == CLI or module.name.startswith(CLI + ".")
        )
        if infrastructure:
            found += [
                f"{_where(module, imp.line)} imports {imp.module} (infrastructure under it)"
                for imp in imports(module)
                if imp.module.split(".")[0] in COMPONENTS
            ]
        layer = next((p for p in PURE if module.name == p or module.name.startswith(p + ".")), None)
        if layer is None:
            continue
        for imp in imports(module):
            top = imp.module.split(".")[0]
            if top in FORBIDDEN_IN_DOMAIN:
                found.append(f"{_where(module, imp.line)} imports {imp.module} (domain is plain)")
            elif _first_party(imp.module) and not any(
                imp.module == ok or imp.module.startswith(ok + ".") for ok in PURE[layer]
            ):
                found.append(f"{_where(module, imp.line)} imports {imp.module} (outside its layer)")
    return found


# -- rule 2 ----------------------------------------------------------------------------------------


def _is_edge(module: Module) -> bool:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("Blueprint"):
            return True
        if isinstance(node, ast.ClassDef) and any(
            ast.unparse(base).endswith("Namespace") for base in node.bases
        ):
            return True
    return False


def edge_violations(modules: dict[str, Module]) -> list[str]:
    found = []
    for module in modules.values():
        if not _is_edge(module):
            continue
        for imp in imports(module):
            persistence = ".persistence" in f".{imp.module}"
            if imp.module.split(".")[0] == "sqlalchemy" or (persistence and not imp.type_checking):
                found.append(
                    f"{_where(module, imp.line)} imports {imp.module}: an edge asks a service"
                )
    return found


# -- rule 3 ----------------------------------------------------------------------------------------


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_violations(modules: dict[str, Module]) -> list[str]:
    found = []
    for module in modules.values():
        doors = PRIVATE_DOORS.get(module.name, ())
        aliases = {}
        for imp in imports(module):
            if imp.module.split(".")[0] in doors:
                continue
            if any(_private(part) for part in imp.module.split(".")):
                found.append(f"{_where(module, imp.line)} imports private module {imp.module}")
            elif imp.name and _private(imp.name) and _resolve(modules, imp) != module.name:
                found.append(f"{_where(module, imp.line)} imports {imp.name} from {imp.module}")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    full = (
                        alias.name
                        if isinstance(node, ast.Import)
                        else f"{node.module}.{alias.name}"
                    )
                    if _first_party(full) and full in modules:
                        aliases[alias.asname or alias.name.split(".")[0]] = full
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                found.append(f"{_where(module, node.lineno)} uses {node.value.id}.{node.attr}")
    return found


# -- rule 4 ----------------------------------------------------------------------------------------


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycle_violations(modules: dict[str, Module]) -> list[str]:
    by_module: dict[str, set[str]] = {name: set() for name in modules}
    by_package: dict[str, set[str]] = {}
    for module in modules.values():
        for imp in imports(module):
            target = _resolve(modules, imp) if _first_party(imp.module) else None
            if target is None or target == module.name:
                continue
            by_module[module.name].add(target)
            source_package, target_package = module.package, modules[target].package
            if source_package != target_package and not target_package.startswith(
                source_package + "."
            ):
                by_package.setdefault(source_package, set()).add(target_package)
    return [f"module cycle: {' <-> '.join(c)}" for c in _cycles(by_module)] + [
        f"package cycle: {' <-> '.join(c)}" for c in _cycles(by_package)
    ]


RULES = {
    "domain": domain_violations,
    "edges": edge_violations,
    "private": private_violations,
    "cycles": cycle_violations,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_tree_keeps_its_layers(rule: str) -> None:
    assert RULES[rule](load(ROOT)) == []


# -- each rule fails on a planted violation ------------------------------------------------------

PLANTED = {
    "domain": ("hub/domain/lifecycle.py", "from sqlalchemy import select\n"),
    "infrastructure": ("teleconsult/db.py", "from hub.persistence.models import Case\n"),
    "edges": ("hub/realtime/namespace.py", "from hub.persistence.models import Case\n"),
    "private": ("hub/dicomweb/views.py", "from hub.services.images import _ids_from_file_meta\n"),
    "cycles": ("shared/enums.py", "import shared.wire\n"),
}


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    return copy


@pytest.mark.parametrize("planted", sorted(PLANTED))
def test_a_planted_violation_is_caught(planted: str, tree_copy: Path) -> None:
    relative, line = PLANTED[planted]
    rule = "domain" if planted == "infrastructure" else planted
    path = tree_copy / relative
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    at = next(
        node.lineno - 1
        for node in ast.parse(original).body
        if isinstance(node, ast.Import | ast.ImportFrom)
        and getattr(node, "module", None) != "__future__"
    )
    path.write_text("".join([*lines[:at], line, *lines[at:]]))
    try:
        found = RULES[rule](load(tree_copy))
    finally:
        path.write_text(original)
    assert found, f"planting {line.strip()!r} in {relative} went unnoticed"
    assert RULES[rule](load(tree_copy)) == []


def test_a_type_checking_import_still_makes_a_cycle(tree_copy: Path) -> None:
    path = tree_copy / "spoke" / "uploads" / "worker.py"
    original = path.read_text()
    path.write_text(
        original + "\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from spoke.context import Spoke\n"
    )
    try:
        found = cycle_violations(load(tree_copy))
    finally:
        path.write_text(original)
    assert any("spoke.uploads" in cycle for cycle in found)
