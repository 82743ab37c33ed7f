"""The package's shape, read from its source with ``ast``: no import cycles among seq_unet's modules
(imports inside functions count too: a lazy import hides a cycle, it does not remove it), and no
function longer than MAX_LINES lines (docstrings included)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "seq_unet"
MAX_LINES = 60
# functions allowed to be longer: (path under seq_unet/, name) -> why
LONG_FUNCTIONS: dict[tuple[str, str], str] = {
    # the public entry point of prediction: 37 of its lines are the docstring of its 16 arguments
    ("predict/genome.py", "predict_genome"): "every argument documented",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The seq_unet modules an import statement names (``from a import b``: ``a.b`` when that is a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    else:
        return set()
    found = set()
    for name in names:
        while name and name not in known:  # `import seq_unet.io.genome.x`: the longest module it names
            name = name.rpartition(".")[0]
        if name.startswith("seq_unet"):
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the seq_unet modules it imports anywhere in its source (module level or in functions)."""
    modules = _modules()
    known = set(modules)
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            edges |= _imported(node, name, path.name == "__init__.py", known)
        graph[name] = edges - {name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
    return [_cycle_in(graph, set(c)) for c in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path a -> ... -> a inside a strongly connected component, for the failure message."""
    start = min(component)
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in component)
        back = [w for w in nxt if w in path]
        if back:
            return path[path.index(back[0]):] + [back[0]]
        step = next(w for w in nxt if w not in seen)
        path.append(step)
        seen.add(step)


def test_the_cycle_finder_finds_a_cycle_and_nothing_else():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_import_graph_counts_imports_inside_functions():
    graph = import_graph()
    # seq_unet.cli.main imports its steps inside main(), the steps their libraries inside each step
    assert "seq_unet.cli.steps" in graph["seq_unet.cli.main"]
    assert "seq_unet.training" in graph["seq_unet.cli.steps"]
    assert "seq_unet.lit" in graph["seq_unet.checkpoint"]


def test_no_import_cycles_among_the_package_modules():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)



def _functions(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1


def test_no_function_is_longer_than_the_limit():
    offenders, allowed = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        for name, line, length in _functions(path):
            if length <= MAX_LINES:
                continue
            if (where, name) in LONG_FUNCTIONS:
                allowed.add((where, name))
                continue
            offenders.append(f"seq_unet/{where}:{line} {name}() has {length} lines")
    assert not offenders, f"functions longer than {MAX_LINES} lines:\n" + "\n".join(offenders)
    assert allowed == set(LONG_FUNCTIONS), f"allowed but no longer long: {set(LONG_FUNCTIONS) - allowed}"
