"""Domain code and the shared package import no web, socket, DICOM network or database layers."""

import ast
from pathlib import Path

import pytest

FORBIDDEN = (
    "flask",
    "flask_socketio",
    "socketio",
    "pynetdicom",
    "sqlalchemy",
    "eventlet",
    "requests",
)
ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path", sorted([*ROOT.glob("hub/domain/*.py"), *ROOT.glob("shared/*.py")]), ids=str
)
def test_domain_and_shared_stay_plain_python(path: Path) -> None:
    assert not _imports(path) & set(FORBIDDEN)
