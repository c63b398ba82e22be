"""The package's seams: no import cycles, every module imports alone, the CLI and the job specs load
without torch, every package folder is packaged, and the tests mirror the layout."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.helpers.paths import ROOT

# Import name of each top-level folder (pyproject's package-dir).
ROOTS = {"t2reg": "t2reg", "registry": "t2reg.registry", "transfer": "t2reg.transfer",
         "adaptation": "t2reg.adaptation", "cli": "t2reg.cli", "migrations": "t2reg.migrations"}


def _modules() -> dict[str, Path]:
    """Every module of the package by import name (a package by its __init__.py)."""
    found = {}
    for folder, name in ROOTS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((name, *parts))] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module is imported (not inside functions, not under TYPE_CHECKING)."""
    out, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body])
    return out


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _top_level_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                # `from pkg import sub` imports the submodule; `from pkg import name` runs pkg's __init__.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycles():
    graph = _import_graph()
    assert len(graph) > 60  # the walk found the package
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_imports_alone():
    """Each module imported first, as if in a fresh interpreter (t2reg's modules are dropped between imports;
    third-party ones stay loaded, which is what keeps this fast). Two interpreters, half the modules each: the
    imports are single-threaded, and two run side by side on two cores."""
    names = sorted(n for n in _modules() if not n.startswith("t2reg.migrations") and "__main__" not in n)
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m == 't2reg' or m.startswith('t2reg.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
    )
    halves = [subprocess.Popen([sys.executable, "-c", script, *names[i::2]], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT) for i in (0, 1)]
    for proc in halves:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert out.strip() == ""


def test_the_cli_and_the_job_specs_load_without_torch():
    light = ["t2reg.cli.main", "t2reg.adaptation.jobs", "t2reg.adaptation.search.spec",
             "t2reg.adaptation.training.spec", "t2reg.adaptation.evaluation.spec", "t2reg.adaptation.crossmodel.spec",
             "t2reg.adaptation.tasks", "t2reg.adaptation.evaluation.paired", "t2reg.cli.ui.app"]
    for name in light:
        script = f"import sys, {name}; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "[]", f"{name} loads {done.stdout.strip()}"


def test_opening_a_current_registry_loads_no_alembic(tmp_path):
    # alembic is a fifth of a second of every command's start; a registry at the newest revision needs none of it
    opening = ("import sys; from t2reg.registry import Registry; from t2reg.settings import load_settings; "
               f"Registry(load_settings(home={str(tmp_path)!r}), create={{create}}).list(); "
               "print('alembic' in sys.modules)")
    for create, loads in ((True, "True"), (False, "False")):  # creating runs the migrations; opening checks
        done = subprocess.run([sys.executable, "-c", opening.format(create=create)], capture_output=True, text=True,
                              cwd=ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == loads


def test_every_package_folder_is_packaged():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert listed == folders


def test_the_tests_mirror_the_adaptation_layout():
    packages = {p.parent.name for p in (ROOT / "adaptation").glob("*/__init__.py")}
    modules = {p.stem for p in (ROOT / "adaptation").glob("*.py")} - {"__init__"}
    tests = ROOT / "tests" / "adaptation"
    assert {p for p in packages if not (tests / p).is_dir()} == set()
    assert {m for m in modules if not (tests / f"test_{m}.py").is_file()} == set()


def _every_import(tree: ast.Module) -> set[str]:
    """Every module an import statement anywhere in ``tree`` names (inside functions too)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def _reaches_past_the_contract(tree: ast.Module) -> list[str]:
    """``<anything>.backend.<name>`` where name is a backend's own internals (its model, its vLLM engine) or
    the old uncontracted decode call."""
    internals = {"model", "llm", "forward_cached", "_forward_cached"}
    return [f"line {node.lineno}: .backend.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in internals and isinstance(node.value, ast.Attribute)
            and node.value.attr == "backend"]


def test_serving_keeps_the_backend_contract():
    """Serving schedules; the backend runs the model. Nothing in adaptation/serving imports transformers or
    vLLM, or reaches into a backend's model, its vLLM engine or an uncontracted call."""
    offences = {}
    for path in sorted((ROOT / "adaptation" / "serving").glob("*.py")):
        tree = ast.parse(path.read_text())
        imports = {m for m in _every_import(tree) if m.split(".")[0] in ("transformers", "vllm")}
        found = sorted(imports) + _reaches_past_the_contract(tree)
        if found:
            offences[path.name] = found
    assert offences == {}


def test_the_serving_guard_sees_an_offence():
    tree = ast.parse("from transformers import DynamicCache\n"
                     "def f(self):\n    return self.scheduler.backend.model.config\n")
    assert _every_import(tree) == {"transformers"}
    assert _reaches_past_the_contract(tree) == ["line 3: .backend.model"]
