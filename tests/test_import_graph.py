"""The import graph flows one way: core modules never import a domain, and no module imports
itself back through others (read from the source with ast, imports inside functions too)."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
CORE = {"app.config", "app.db", "app.errors", "app.web", "app.security", "app.charts"}
DOMAINS = (
    "accounts",
    "analytics",
    "calibration",
    "exports",
    "feedback",
    "observations",
    "rubrics",
    "sync",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in APP.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found |= {t for t in targets if t in modules}
        graph[name] = found - {name}
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_core_modules_import_no_domain() -> None:
    graph = _graph()
    for core in sorted(CORE):
        assert core in graph, core
        domains = sorted(m for m in _reach(graph, core) if m.split(".")[1] in DOMAINS)
        assert domains == [], f"{core} pulls in {domains}"


def test_no_module_imports_itself_back() -> None:
    graph = _graph()
    cycles = sorted(m for m in graph if m in _reach(graph, m))
    assert cycles == [], f"import cycles through {cycles}"


def test_the_graph_is_read_from_the_source() -> None:
    graph = _graph()  # a check that cannot fail is no check: it sees real edges
    assert "app.errors" in graph["app.db"]
    assert "app.accounts.deps" in graph["app.main"]
