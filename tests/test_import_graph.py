"""The project's import graph: no cycles between modules, and the rooms' one-way dependencies.

Reads the source with `ast` (nothing is imported), so it is fast and also sees imports inside
functions, which hide a cycle from Python but not from a reader. Run as a script to print the graph
of the top folders (the closing note of issue 14 quotes it):

    .venv/bin/python -m tests.test_import_graph
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where each top-level import name lives: the project root is on sys.path, and so is plugins/.
SOURCE_ROOTS = (REPO_ROOT, REPO_ROOT / "plugins")
SOURCE_FOLDERS = ("dags", "plugins", "include", "bench")


def module_files() -> dict[str, Path]:
    """Every project module by dotted name (tests excluded: they depend on everything)."""
    modules = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            root = REPO_ROOT / "plugins" if folder == "plugins" else REPO_ROOT
            if folder == "dags":  # the DAG processor loads DAG files by path, not as a package
                root = REPO_ROOT / "dags"
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def task_module_name(node: ast.AST) -> str | None:
    """`task_module("tasks.ingest")` (include/pipeline/dag_args.py imports the task logic when a task
    runs) is an import of include.pipeline.tasks.ingest: the graph must see it to find a cycle."""
    from include.pipeline.dag_args import TASK_LOGIC_PACKAGE

    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "task_module"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return f"{TASK_LOGIC_PACKAGE}.{node.args[0].value}"
    return None


def imported_names(tree: ast.AST) -> set[str]:
    """Dotted names imported anywhere in the module, `from a import b` as both a and a.b."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif name := task_module_name(node):
            names.add(name)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (a name resolves to the module it names)."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(ast.parse(path.read_text(), str(path))):
            if imported in modules and imported != name:
                targets.add(imported)
        # `from package import module` adds both names; keep the module, not its package too.
        graph[name] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)} or targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def room(module: str) -> str:
    """The folder a module belongs to, at the depth the layout talks about."""
    parts = module.split(".")
    if parts[0] == "include" and len(parts) > 1 and parts[1] in ("pipeline", "local_personalize"):
        return ".".join(parts[:2])
    if parts[0] in ("include", "personalize", "personalize_contract", "bench"):
        return parts[0]
    if module_files()[module].is_relative_to(REPO_ROOT / "dags"):
        return "dags"
    return "plugins"


def room_graph(graph: dict[str, set[str]]) -> Counter[tuple[str, str]]:
    """(from room, to room) -> number of module-level import edges between them."""
    edges: Counter[tuple[str, str]] = Counter()
    for source, targets in graph.items():
        for target in targets:
            if room(source) != room(target):
                edges[room(source), room(target)] += 1
    return edges


def test_no_import_cycle_between_modules():
    cycles = find_cycles(import_graph())
    assert cycles == [], f"modules that import each other (directly or round a loop): {cycles}"


def test_task_module_calls_are_edges():
    """The DAG wiring imports the task logic through task_module(): those are edges of the graph."""
    graph = import_graph()
    assert "include.pipeline.tasks.ingest" in graph["personalize_pipelines"]
    assert "include.pipeline.tasks.erasure" in graph["personalize_lifecycle"]
    assert "include.pipeline.solution_tasks" in graph["include.pipeline.solution_dag"]
    every_call = [
        node
        for path in module_files().values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "task_module"
    ]
    unread = [ast.unparse(node) for node in every_call if task_module_name(node) is None]
    assert unread == [], f"task_module() takes a literal name, so the import graph can read it: {unread}"
    missing = {task_module_name(node) for node in every_call} - set(module_files())
    assert missing == set(), f"task_module() names modules that do not exist: {missing}"


def test_cycle_finder_sees_a_loop():
    """The check itself must be able to fail."""
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_rooms_depend_one_way():
    """The local service and the contract package never import the pipeline or the provider layer."""
    edges = room_graph(import_graph())
    forbidden = {
        ("include.local_personalize", "include.pipeline"),
        ("include.local_personalize", "personalize"),
        ("personalize_contract", "include.pipeline"),
        ("personalize_contract", "include.local_personalize"),
        ("personalize_contract", "personalize"),
        ("personalize", "include.pipeline"),
        ("personalize", "include.local_personalize"),
        ("personalize", "personalize_view"),  # the view is this project's; the provider layer is reusable
        ("include.pipeline", "include.local_personalize"),
    }
    assert sorted(pair for pair in edges if pair in forbidden) == []


def test_contract_package_needs_only_the_standard_library():
    """Every component imports personalize_contract (the triggerer, the local service's container):
    it must not bring Airflow, pandas or anything else with it."""
    modules = module_files()
    for name, path in modules.items():
        if name.split(".")[0] != "personalize_contract":
            continue
        roots = {imported.split(".")[0] for imported in imported_names(ast.parse(path.read_text()))}
        outside = sorted(roots - set(sys.stdlib_module_names) - {"personalize_contract", "__future__"})
        assert outside == [], f"{name} imports {outside}"


if __name__ == "__main__":
    graph = import_graph()
    for (source, target), count in sorted(room_graph(graph).items()):
        print(f"{source:28} -> {target:28} {count:3} imports")
    print("cycles:", find_cycles(graph) or "none")
