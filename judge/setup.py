"""The repository's build hook (../setup.py: the tolerances travel as harness/pyproject.toml), run
for this folder's pyproject.toml."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parent.parent / "setup.py"))
