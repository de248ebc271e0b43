"""The package's import structure, read from its source with ``ast`` (nothing is imported): every
module has a layer (docs/architecture.md), imports only its own layer or lower ones, no import
cycle (function-level imports included), no private name of another module, no file over 400
lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "pgjax"

#: module → layer, as in docs/architecture.md (a package's submodules share its layer).
LAYERS = {
    "pgjax.keys": 0, "pgjax.distributions": 0, "pgjax.advantages": 0, "pgjax.losses": 0,
    "pgjax.drifts": 0, "pgjax.networks": 0, "pgjax.envs": 0, "pgjax.rollout": 0,
    "pgjax.packing": 0,
    "pgjax.updates": 0, "pgjax.devices": 0, "pgjax.checkpoint": 0, "pgjax.sinks": 0,
    "pgjax.faults": 0, "pgjax.distributed": 0, "pgjax.run_files": 0, "pgjax.cli_args": 0,
    "pgjax.recurrent": 0, "pgjax.extras": 0, "pgjax.run_lock": 0, "pgjax.checkpoint_log": 0,
    "pgjax.checks": 0, "pgjax.programs": 0, "pgjax.progress": 0,
    "pgjax.algorithms": 1,
    "pgjax.validation": 2, "pgjax.config": 2,
    "pgjax.trainer": 3,
    "pgjax.policy": 4, "pgjax.video": 4,
    "pgjax.engine": 5,
    "pgjax.runner": 6, "pgjax.sweep_files": 6, "pgjax.sweeps": 6, "pgjax.meta_files": 6,
    "pgjax.meta": 6, "pgjax.analysis": 6, "pgjax.runs": 6, "pgjax.results": 6,
    "pgjax.cli_meta": 7, "pgjax.cli_report": 7, "pgjax.cli": 7, "pgjax.__main__": 7, "pgjax": 7,
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = ["pgjax", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_key(module: str) -> str | None:
    """The entry of LAYERS that holds ``module`` (``pgjax.envs.core`` → ``pgjax.envs``); the
    package ``pgjax`` holds only its ``__init__``."""
    if module == "pgjax":
        return module
    while module not in LAYERS and module.count(".") > 1:
        module = module.rpartition(".")[0]
    return module if module in LAYERS else None


def layer(module: str) -> int:
    return LAYERS[layer_key(module)]


def imports(module: str):
    """``(imported module, [names taken from it])`` for every import of a pgjax module in
    ``module``'s source, at any depth (function-level imports too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pgjax":
                    yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            if base.split(".")[0] != "pgjax":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # ``from pgjax import drifts``: the submodule
                    yield sub, []
                else:
                    yield base, [alias.name]


def graph() -> dict:
    return {m: sorted({target for target, _ in imports(m) if target != m}) for m in MODULES}


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_key(m) is None]
    assert not missing, f"modules without a layer in LAYERS (and docs/architecture.md): {missing}"


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
              for m, targets in graph().items() for t in targets if layer(t) > layer(m)]
    assert not upward, upward


def test_no_import_cycle():
    edges, state, cycles = graph(), {}, []

    def visit(module, path):
        state[module] = "open"
        for target in edges.get(module, []):
            if target == "pgjax" or target not in edges:
                continue  # ``import pgjax`` in a docstring-free module: the package itself
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in edges:
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_no_private_name_of_another_module():
    private = []
    for module in MODULES:
        for target, names in imports(module):
            private += [f"{module}: from {target} import {n}" for n in names
                        if n.startswith("_") and not n.startswith("__") and target != module]
            if target.rpartition(".")[2].startswith("_") and target != "pgjax.__main__":
                private.append(f"{module}: imports the private module {target}")
        tree = ast.parse(MODULES[module].read_text())
        bound = {alias.asname or alias.name for node in ast.walk(tree)
                 if isinstance(node, (ast.Import, ast.ImportFrom))
                 for alias in node.names
                 if (getattr(node, "module", None) or alias.name).split(".")[0] == "pgjax"}
        private += [f"{module}: {node.value.id}.{node.attr}" for node in ast.walk(tree)
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and node.attr.startswith("_")
                    and not node.attr.startswith("__")]
    assert not private, private


@pytest.mark.parametrize("module", sorted(MODULES))
def test_file_length(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]}: {lines} lines (at most {MAX_LINES})"


def test_the_checks_catch_what_they_look_for(tmp_path, monkeypatch):
    """Each check fails on a package that breaks its rule."""
    package = tmp_path / "pgjax"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "keys.py").write_text("from pgjax.trainer import _private\n")
    (package / "trainer.py").write_text("def f():\n    from pgjax import keys\n")
    (package / "extra.py").write_text("\n" * (MAX_LINES + 1))
    monkeypatch.setitem(globals(), "ROOT", package)
    modules = {module_name(p): p for p in sorted(package.rglob("*.py"))}
    monkeypatch.setitem(globals(), "MODULES", modules)
    with pytest.raises(AssertionError, match="without a layer"):
        test_every_module_has_a_layer()
    with pytest.raises(AssertionError, match="layer 0. imports pgjax.trainer"):
        test_no_module_imports_a_higher_layer()
    with pytest.raises(AssertionError, match="pgjax.keys -> pgjax.trainer -> pgjax.keys"):
        test_no_import_cycle()
    with pytest.raises(AssertionError, match="import _private"):
        test_no_private_name_of_another_module()
    with pytest.raises(AssertionError, match="lines"):
        test_file_length("pgjax.extra")
