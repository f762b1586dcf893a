"""The packages' import graph: layers one direction, no cycle, nothing imports tests.

Both checks read every import, including those inside functions (grimp parses the
source), so a function-level import cannot hide a cycle.
"""

import ast
from pathlib import Path

import grimp
import pytest
from importlinter import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("align_workflow", "states", "bench", "tests", cache_dir=None)


def package_edges(graph):
    """(importer, imported) between the project's packages: align_workflow's children and states."""
    packages = sorted(graph.find_children("align_workflow") | {"states"})
    return packages, {
        (a, b)
        for a in packages
        for b in packages
        if a != b and graph.direct_import_exists(importer=a, imported=b, as_packages=True)
    }


def find_cycle(nodes, edges):
    """One cycle as a list of nodes (first == last), or None."""
    after = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    done, path = set(), []

    def visit(node):
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for nxt in after[node]:
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for node in nodes:
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle(["a", "b", "c"], {("a", "b"), ("b", "c"), ("c", "a")}) == ["a", "b", "c", "a"]
    assert find_cycle(["a", "b", "c"], {("a", "b"), ("b", "c"), ("a", "c")}) is None


def test_the_package_import_graph_has_no_cycle(graph):
    packages, edges = package_edges(graph)
    cycle = find_cycle(packages, edges)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)
    assert {
        "align_workflow.align",
        "align_workflow.cases",
        "align_workflow.workflow",
        "align_workflow.integration",
        "align_workflow.portals",
        "align_workflow.demo",
        "states",
    } <= set(packages)


def test_the_align_adapters_import_nothing_of_the_project(graph):
    imported = graph.find_modules_directly_imported_by("align_workflow.align", as_package=True)
    assert (
        sorted(
            m
            for m in imported
            if m.split(".")[0] in {"align_workflow", "states", "bench", "tests"}
            and not m.startswith("align_workflow.align")
        )
        == []
    )


def test_the_import_contracts_are_kept(capsys):
    # pyproject.toml's [tool.importlinter] contracts (layers, the adapters apart, nothing
    # imports tests, no cycle), as `make lint` runs them.
    status = cli.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert status == cli.EXIT_STATUS_SUCCESS, capsys.readouterr().out


def function_level_imports_without_a_reason(root):
    """(path:line, source) of each import inside a function or class with no `why` on its line."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        source = path.read_text()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)) and "why" not in lines[inner.lineno - 1]:
                        found.append(f"{path.relative_to(ROOT)}:{inner.lineno}: {lines[inner.lineno - 1].strip()}")
    return sorted(set(found))


@pytest.mark.parametrize("package", ["align_workflow", "states"])
def test_imports_are_at_module_level_unless_they_say_why(package):
    assert function_level_imports_without_a_reason(ROOT / package) == []
