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
