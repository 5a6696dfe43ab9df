"""The dependency rule, read from the source: no import cycle between edgeface's modules (imports
inside functions included) nor between its folders, config imports nothing else of edgeface, at most 12 modules directly
in edgeface/, no file over 600 lines. Imports under `if TYPE_CHECKING:` count too: a type named
from a later layer is a dependency on it all the same."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "edgeface"
MAX_TOP_MODULES = 12
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(tree: ast.AST):
    """Every import statement: at module level, in a function, under `if TYPE_CHECKING:`."""
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def _resolve(name: str) -> str | None:
    """The edgeface module `name` runs: itself, or the nearest package above it (an attribute's)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> dict[str, int]:
    """edgeface modules `module` imports -> the line of the first such import."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: dict[str, int] = {}
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            # `from pkg import name`: the submodule pkg.name where there is one, else pkg itself
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for target in targets:
            resolved = _resolve(target) if target.startswith("edgeface") else None
            if resolved and resolved != module:
                found.setdefault(resolved, node.lineno)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def describe(component: list[str]) -> str:
    """The shortest cycle through the component's first module, each import with its line."""
    inside, start = set(component), component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while start not in came_from:  # breadth first, within the component, back to start
        following = []
        for m in frontier:
            for t in GRAPH[m]:
                if t in inside and t not in came_from:
                    came_from[t] = m
                    following.append(t)
        frontier = following
    path = [start]
    while len(path) == 1 or path[-1] != start:
        path.append(came_from[path[-1]])
    path.reverse()
    return " -> ".join(f"{m} (line {GRAPH[m][n]})" for m, n in zip(path, path[1:])) + f" -> {start}"


def test_the_walk_sees_imports_of_every_kind():
    # a module-level import, an import inside a function, a relative one: the walk must see all three
    assert "edgeface.config" in GRAPH["edgeface.cli.common"]
    assert "edgeface.service.daemon" in GRAPH["edgeface.cli.runners"]  # imported inside cmd_run
    assert find_cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}) == [["a", "b", "c"]]


def test_no_import_cycle_between_edgeface_modules():
    cycles = find_cycles(GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(describe(c) for c in cycles)


def folder(module: str) -> str:
    """edgeface.vision.detect -> vision; a module directly in edgeface/ is its own."""
    return module.split(".")[1] if module.count(".") else module


def test_no_cycle_between_folders():
    # dependencies point one way: a folder never needs one that needs it, even through other modules
    graph: dict[str, dict[str, int]] = {}
    for m, targets in GRAPH.items():
        for t, line in targets.items():
            if folder(t) != folder(m):
                graph.setdefault(folder(m), {})[folder(t)] = line
                graph.setdefault(folder(t), {})
    cycles = find_cycles(graph)
    users = {(folder(m), folder(t)): f"{m} -> {t} (line {line})" for m, targets in GRAPH.items()
             for t, line in targets.items()}
    assert not cycles, "folders that need each other:\n" + "\n".join(
        "; ".join(users[a, b] for a in c for b in c if a != b and (a, b) in users) for c in cycles)


def test_config_imports_nothing_else_from_edgeface():
    outside = [f"{m} imports {t} (line {line})" for m in MODULES if m == "edgeface.config" or
               m.startswith("edgeface.config.") for t, line in GRAPH[m].items()
               if t != "edgeface.config" and not t.startswith("edgeface.config.")]
    assert not outside, "\n".join(outside)


def test_at_most_12_modules_directly_in_edgeface():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules in edgeface/: {top}; put new ones in a subpackage"


def test_no_file_over_600_lines():
    long = [f"{p.relative_to(ROOT.parent)}: {n} lines" for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, "split these into new modules:\n" + "\n".join(long)
