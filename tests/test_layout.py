"""The layout's rules that import-linter cannot see: the six front doors at the top, and no import circle.

import-linter (`lint-imports`, in `make lint`) checks the contracts inside `panfm` (pyproject.toml);
the front doors are top-level modules, which it cannot take as root packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRONT_DOORS = {"app", "clock", "config", "throughput_collector", "throughput_storage", "alerts"}
# What each front door may import of the product: its own area, the bottom layer, other front doors.
BOTTOM = ("panfm.models", "panfm.settings", "panfm.timefmt", "panfm.redact")
OWN_AREA = {
    "config": ("panfm.settings",),
    "throughput_collector": ("panfm.collector",),
    "throughput_storage": ("panfm.storage",),
    "alerts": ("panfm.alerting",),
    "app": ("panfm.web", "panfm.ops"),
    "clock": ("panfm.ops",),
}
PRODUCT_ROOTS = ("panfm", *sorted(FRONT_DOORS))


def _module_imports(path: Path) -> set[str]:
    """Modules a file imports, those under `if TYPE_CHECKING:` included (a circle for the type checker too)."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.add(node.module)
                out.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit([n for n in getattr(node, field, []) if isinstance(n, ast.stmt | ast.ExceptHandler)])

    visit(tree.body)
    return out


def _product_modules() -> dict[str, Path]:
    mods = {name: ROOT / f"{name}.py" for name in FRONT_DOORS}
    for path in (ROOT / "panfm").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _graph() -> dict[str, set[str]]:
    mods = _product_modules()
    return {name: {m for m in _module_imports(path) if m in mods and m != name} for name, path in mods.items()}


def test_the_top_level_holds_only_the_six_front_doors():
    top = {p.stem for p in ROOT.glob("*.py")} - {"gunicorn.conf"}
    assert top == FRONT_DOORS


def test_each_front_door_imports_only_its_own_area_and_the_bottom_layer():
    for door in sorted(FRONT_DOORS):
        allowed = (*OWN_AREA[door], *BOTTOM)
        for imported in _module_imports(ROOT / f"{door}.py"):
            if imported.split(".")[0] != "panfm":
                continue
            if imported in ("panfm.ops", "panfm.xmlapi") and door in ("app", "clock"):
                continue  # package front doors
            assert imported.startswith(allowed), f"{door}.py imports {imported}: outside its area"


def test_nothing_imports_app_or_clock():
    for name, deps in _graph().items():
        assert not deps & {"app", "clock"}, f"{name} imports a composition root"


def test_no_module_imports_itself_back_through_a_circle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    assert circles == []


def test_the_graph_sees_the_imports_it_checks():
    """Guard against a checker that passes because it reads nothing."""
    graph = _graph()
    assert "throughput_storage" in graph["panfm.web.api"]
    assert "panfm.storage.samples" in graph["throughput_storage"]
    assert len(graph) > 40
