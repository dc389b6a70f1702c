"""port/ never imports torch, torchaudio or pyannote: checked in a fresh interpreter."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import port

FORBIDDEN = ("torch", "torchaudio", "pyannote", "lightning")


def test_port_imports_no_torch():
    modules = sorted(f"port.{m.name}" for m in pkgutil.iter_modules(port.__path__))
    assert "port.pipeline" in modules and "port.clustering" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    offending = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert not offending, f"port imported {offending[:5]}"


def test_port_source_has_no_forbidden_import():
    for path in Path(port.__file__).parent.glob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("import", "from"):
                assert words[1].split(".")[0] not in FORBIDDEN, f"{path.name}:{number}: {line.strip()}"


# --------------------------------------------------------------------------- the two halves
REPO = Path(port.__file__).resolve().parent.parent
PACKAGES = ("port", "harness", "reference")
VOCABULARY = {"port", "port.dumps", "port.vocabulary"}  # what the harness may read of the port


def _loaded_by(package: str) -> list[str]:
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.iter_modules(pkg.__path__): importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(out)


def test_harness_imports_no_torch_and_only_the_vocabulary_of_the_port():
    loaded = _loaded_by("harness")
    assert "harness.compare" in loaded and "harness.report" in loaded
    assert not [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert {m for m in loaded if m.split(".")[0] == "port"} <= VOCABULARY
    assert "onnxruntime" not in loaded  # nothing of the port's runtime either


def _imports(path: Path) -> set[str]:
    """Every module a file imports (at any depth of the file), relative imports resolved."""
    import ast

    module = ".".join(path.relative_to(REPO).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _project_modules() -> dict[str, set[str]]:
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).glob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_port_imports_nothing_of_the_harness():
    graph = _project_modules()
    for name, imported in graph.items():
        if name.split(".")[0] == "port":
            assert not [m for m in imported if m.split(".")[0] in ("harness", "reference")], name
        if name.split(".")[0] == "harness":
            assert not [m for m in imported if m.split(".")[0] == "reference"], name
            assert {m for m in imported if m.split(".")[0] == "port"} <= VOCABULARY, name


def test_no_module_imports_one_that_imports_it_back():
    graph = _project_modules()
    cycles = []

    def visit(start, node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                cycles.append(path + [nxt])
            elif nxt not in path and len(path) < 12:
                visit(start, nxt, path + [nxt])

    for name in graph:
        visit(name, name, [name])
    assert not cycles, f"import circles: {sorted({' -> '.join(c) for c in cycles})[:5]}"
