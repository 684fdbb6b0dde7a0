"""The layer rule holds: lower layers never import higher ones (not even inside a function), no cycles.

cli > experiments > adapters > check > data > core > base (errors, progress, version, formatting). The
facade modules (``normlab/__init__.py``, ``normlab/torch.py``, ``normlab/keras.py``, and ``normlab/__main__.py``
for ``python -m normlab``) stand above them all and may import anything; nothing inside the package imports the facade. Read from the source with
``ast``, so an import hidden in a function counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "normlab"

LAYERS = ["base", "core", "data", "check", "adapters", "experiments", "cli", "facade"]
BASE = {"errors", "_progress", "_version", "_format", "_files"}
FACADE = {"normlab", "normlab.torch", "normlab.keras", "normlab.__main__"}
#: Frameworks the NumPy-only layers never import.
FRAMEWORKS = ("torch", "keras", "tensorflow", "jax", "dask", "distributed", "matplotlib")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> str:
    if module in FACADE:
        return "facade"
    part = module.split(".")[1]
    return "base" if part in BASE else part


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """Every module of the package (and every outside top-level package) that ``module`` imports."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            out += [(t, node.lineno) for t in subs] or [(target, node.lineno)]
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_the_layer_table_knows_every_module():
    unknown = {m for m in MODULES if layer_of(m) not in LAYERS}
    assert not unknown, f"modules outside the layers {LAYERS}: {sorted(unknown)}; add their layer to this test"


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, imports in GRAPH.items():
        mine = LAYERS.index(layer_of(module))
        for target, line in imports:
            if target == "normlab" or target.startswith("normlab."):
                theirs = LAYERS.index(layer_of(target))
                if theirs > mine:
                    upward.append(f"{MODULES[module].relative_to(SRC)}:{line} ({layer_of(module)}) imports "
                                  f"{target} ({layer_of(target)})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


@pytest.mark.parametrize("layer", ["base", "core", "data", "check"])
def test_numpy_only_layers_never_import_a_framework(layer):
    found = [
        f"{MODULES[m].relative_to(SRC)}:{line} imports {t}"
        for m, imports in GRAPH.items() if layer_of(m) == layer
        for t, line in imports if t.split(".")[0] in FRAMEWORKS
    ]
    assert not found, "\n".join(found)


def test_there_is_no_import_cycle():
    edges = {m: sorted({t for t, _ in imports if t in MODULES and t != m}) for m, imports in GRAPH.items()}
    # a package's __init__ is imported with each of its submodules: only edges *into* an __init__ from
    # outside the package are real dependencies on it
    for m, targets in edges.items():
        edges[m] = [t for t in targets if not (MODULES[t].name == "__init__.py" and m.startswith(t + "."))]
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                cycles.append([*stack[stack.index(t):], t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_scan_sees_imports_inside_functions(tmp_path):
    """The scanner itself: an import inside a function body is found (the test above could not fail otherwise)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from normlab.experiments import compare\n    return compare\n")
    assert ("normlab.experiments", 2) in _imports("normlab.core.probe", probe)
