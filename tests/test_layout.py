"""The project's layout: what may import what, and where the tests' support code lives.

Imports are read with `ast` from every module, including those made inside functions.
"""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIMULATOR = ROOT / "align_simulator"
TESTS = ROOT / "tests"


def imported_modules(path):
    """Every absolute module name `path` imports (relative imports stay inside its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def imports_of(paths, forbidden):
    found = []
    for path in paths:
        for lineno, module in imported_modules(path):
            if module.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{lineno} imports {module}")
    return found


def python_files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_the_simulator_is_a_top_level_package_of_its_own():
    assert (SIMULATOR / "__init__.py").is_file()
    assert (SIMULATOR / "__main__.py").is_file()
    assert not (ROOT / "align_workflow" / "integration" / "simulator").exists()


def test_the_simulator_imports_neither_django_nor_the_project():
    modules = list(python_files("align_simulator"))
    assert len(modules) > 10
    assert imports_of(modules, {"django", "align_workflow", "states", "bench", "tests"}) == []


def test_every_simulator_module_imports_with_django_and_the_project_unimportable():
    # None in sys.modules makes any import of that name (or of its submodules) fail.
    script = (
        "import sys, importlib, pkgutil\n"
        "for name in ('django', 'align_workflow', 'states', 'bench', 'tests'):\n"
        "    sys.modules[name] = None\n"
        "import align_simulator\n"
        "names = [m.name for m in pkgutil.walk_packages(align_simulator.__path__, 'align_simulator.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10


def test_nothing_outside_the_tests_imports_them():
    modules = [*python_files("align_workflow", "align_simulator", "bench", "states", "scripts"), ROOT / "manage.py"]
    assert imports_of(modules, {"tests"}) == []


def test_the_tests_support_code_lives_in_support_and_plugins():
    """Outside tests/support/ and tests/plugins/ there are only test modules, conftest.py and packages."""
    strays = [
        str(path.relative_to(ROOT))
        for path in TESTS.rglob("*.py")
        if path.parent.name not in ("support", "plugins")
        and not path.name.startswith("test_")
        and path.name not in ("conftest.py", "__init__.py")
    ]
    assert strays == []


def test_the_tests_conftest_only_registers_plugins():
    tree = ast.parse((TESTS / "conftest.py").read_text())
    defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert defined == []
    assert "tests.plugins.simulator" in (TESTS / "conftest.py").read_text()


def test_no_test_module_imports_helpers_from_a_conftest():
    found = [
        f"{path.relative_to(ROOT)}:{lineno} imports {module}"
        for path in TESTS.rglob("*.py")
        for lineno, module in imported_modules(path)
        if module.split(".")[-1] == "conftest"
    ]
    found += [
        f"{path.relative_to(ROOT)}:{node.lineno} imports .conftest"
        for path in TESTS.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level and node.module == "conftest"
    ]
    assert found == []
