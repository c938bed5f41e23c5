"""The package's import graph, read from the source with ``ast`` (lazy imports inside functions
included, since those are how cycles hide): dependencies point down only.

- no cycle among asyncopt's modules;
- nothing below an estimator imports one (``asyncopt.logistic``, ``asyncopt.lda``): only the package
  root and the command line sit above them;
- a backend never imports another backend (what they share is ``backends/common.py``), and no
  backend reaches up into the package root (``from .. import build_info`` would pull the estimators in).

Run ``python tests/test_structure.py`` to print the graph.
"""
import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "asyncopt"
EXTENSIONS = {"asyncopt._core", "asyncopt._cuda"}  # compiled modules: leaves of the graph
ESTIMATORS = {"asyncopt.logistic", "asyncopt.lda"}
ABOVE_ESTIMATORS = {"asyncopt", "asyncopt.cli", "asyncopt.__main__"}
BACKENDS = {"asyncopt.backends.threads", "asyncopt.backends.cuda", "asyncopt.backends.mpi",
            "asyncopt.backends.simulate"}


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(base, name, modules):
    """``base.name`` when that is a module of the package (a submodule import), else ``base``."""
    full = f"{base}.{name}" if name else base
    return full if full in modules or full in EXTENSIONS else base


def import_graph():
    """module -> set of asyncopt modules it imports (anywhere in its source)."""
    modules = _modules()
    graph = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name.split(".")[0] == "asyncopt")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = ".".join(base[:len(base) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module or ""
                if base.split(".")[0] != "asyncopt":
                    continue
                for alias in node.names:
                    edges.add(_resolve(base, alias.name, modules))
        edges.discard(mod)
        graph[mod] = {e for e in edges if e in modules or e in EXTENSIONS}
    return graph


def _cycles(graph):
    """Every strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _backend_of(mod):
    for b in BACKENDS:
        if mod == b or mod.startswith(b + "."):
            return b
    return None


def test_the_graph_is_read():
    """A parser that found nothing would pass every check below."""
    graph = import_graph()
    assert "asyncopt.backends.mpi.worker" in graph
    assert "asyncopt.logistic" in graph["asyncopt"]
    assert {"asyncopt.backends", "asyncopt.settings", "asyncopt.state"} <= graph["asyncopt.logistic"]
    assert "asyncopt._core" in graph["asyncopt.backends.threads"]
    assert "asyncopt.state" in graph["asyncopt.backends.mpi.worker"]  # a relative import two levels up


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_nothing_below_an_estimator_imports_one():
    bad = {m: sorted(e & ESTIMATORS) for m, e in import_graph().items()
           if m not in ABOVE_ESTIMATORS and e & ESTIMATORS}
    assert bad == {}


def test_backends_import_neither_each_other_nor_the_package_root():
    bad = {}
    for mod, edges in import_graph().items():
        own = _backend_of(mod)
        if own is None:
            continue
        wrong = sorted(e for e in edges if (_backend_of(e) not in (None, own)) or e == "asyncopt")
        if wrong:
            bad[mod] = wrong
    assert bad == {}


@pytest.mark.parametrize("layer,allowed", [
    # the layers under the backends: rules, settings, states and the loop know no backend
    ("asyncopt.optim", {"asyncopt._core", "asyncopt._checks"}),
    ("asyncopt.settings", {"asyncopt._core", "asyncopt.optim"}),
    ("asyncopt.training", {"asyncopt.progress", "asyncopt._core"}),  # _core: the Ctrl-C stop flag
    ("asyncopt.progress", set()),
    ("asyncopt.checkpoint", set()),  # the file format: no estimator, state or backend (they register)
    ("asyncopt.plot", set()),  # figures read what a fit recorded, through public attributes only
])
def test_lower_layers_import_only_what_is_below(layer, allowed):
    assert import_graph()[layer] <= allowed


def test_the_core_stub_declares_every_public_name_of_the_compiled_module():
    """python/asyncopt/_core.pyi is the compiled module's documented face: nothing bound is missing."""
    from asyncopt import _core

    stub = ast.parse((PACKAGE / "_core.pyi").read_text())
    declared = set()
    for node in ast.walk(stub):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
    public = {n for n in dir(_core) if not n.startswith("_")}
    assert public - declared == set()
    emulator = {n for n in dir(_core.gpu_emulator) if not n.startswith("_")}
    assert emulator - declared == set()


if __name__ == "__main__":
    for mod, edges in sorted(import_graph().items()):
        print(mod, "->", ", ".join(sorted(edges)) or "-")
    sys.exit(1 if _cycles(import_graph()) else 0)
