"""Build hook of both distributions built from this repository (pyannote-port here, pyannote-verify
in judge/, whose setup.py runs this file): a wheel carries pyproject.toml, whose [tool.verify] tables
are the judge's tolerances, as harness/pyproject.toml, where harness/compare.py reads them when
installed. Everything else is declared in each pyproject.toml (docs/install.md)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TOLERANCES = Path(__file__).resolve().parent / "pyproject.toml"


class BuildPy(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:  # an editable install reads the checkout's pyproject.toml itself
            target = Path(self.build_lib) / "harness" / "pyproject.toml"
            target.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(TOLERANCES), str(target))


setup(cmdclass={"build_py": BuildPy})
