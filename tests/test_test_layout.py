"""The suite's own layout: a test module is never another's library; shared helpers live in tests/helpers/."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_roots(path: Path) -> set[str]:
    """The top-level names of every absolute import in a file, nested ones (inside functions) included."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_file_in_tests_imports_a_test_module() -> None:
    files = sorted(TESTS.glob("*.py")) + sorted((TESTS / "helpers").glob("*.py"))
    test_modules = {p.stem for p in TESTS.glob("test_*.py")}
    assert len(test_modules) > 1
    offenders = {
        str(path.relative_to(TESTS)): sorted(found)
        for path in files
        if (found := {m for m in _imported_roots(path) if m in test_modules or m.startswith("test_")})
    }
    assert offenders == {}, f"move what they share into tests/helpers/: {offenders}"
