"""The installs as users meet them (docs/install.md).

Fast: the versions agree, the judge's distribution carries what the judge imports and no more, the
judge's numpy pdist is scipy's bit for bit, the model cache's location. Slow: fresh virtual
environments built from a copy of this checkout (the registries give the dependencies):
- the judge alone (`pip install ./judge`): no torch, ONNX Runtime, scipy, scikit-learn or PyAV,
  site-packages at most 200 MB, and `pyannote-verify compare` passes the port's dumps (exit 0) and
  fails a doctored copy (exit 1), run from another directory;
- the whole project, not editable (`pip install .`): `pyannote-port` and `pyannote-verify` from
  another directory, the port finding the models `verify.py export` wrote to the user cache and
  giving the checkout's RTTM.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
ROOT_PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
JUDGE_PROJECT = tomllib.loads((REPO / "judge" / "pyproject.toml").read_text())
SAMPLE = REPO / "tests" / "data" / "sample.wav"
SHORT = REPO / "tests" / "data" / "ami_stereo_5s.wav"  # 5 s, two channels
JUDGE_LIMIT_MB = 200  # the judge's install, all of site-packages (pip and setuptools included)
# what the judge's install must not hold (module names)
HEAVY = ("torch", "torchaudio", "pyannote", "onnxruntime", "onnx", "sklearn", "av", "scipy", "soundfile")
PIP_TIMEOUT = 900  # the whole project pulls ONNX Runtime GPU (about 340 MB) from the registry


# --------------------------------------------------------------------------- fast
def test_versions_agree():
    """One version: both distributions, port.__version__, and the newest release in CHANGELOG.md."""
    import port

    version = ROOT_PROJECT["project"]["version"]
    assert JUDGE_PROJECT["project"]["version"] == version == port.__version__
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert releases and releases[0] == version, f"CHANGELOG.md's newest release {releases[:1]} is not {version}"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _judge_files() -> list[Path]:
    tool = JUDGE_PROJECT["tool"]["setuptools"]
    files = [path for package in tool["packages"] for path in (REPO / package).glob("*.py")]
    return files + [REPO / (module.replace(".", "/") + ".py") for module in tool["py-modules"]]


def test_the_judges_distribution_carries_what_the_judge_imports():
    """judge/pyproject.toml: every project module harness/ and the vocabulary import is shipped, and
    every third-party module they import is a dependency (matplotlib: the report extra)."""
    tool = JUDGE_PROJECT["tool"]["setuptools"]
    assert tool["package-dir"] == {"": ".."} and tool["packages"] == ["harness"]
    shipped = {"harness", "port", *tool["py-modules"], *(f"harness.{p.stem}" for p in (REPO / "harness").glob("*.py"))}
    project = {"port", "harness", "reference", "verify"}
    third_party = set()
    for path in _judge_files():
        if path.name == "verify.py":
            continue  # imports the rest lazily, per command; the slow test runs compare and inputs
        for name in _imports(path):
            top = name.split(".")[0]
            if top in project:
                # `from port.dumps import DumpError` names a module or a name in one
                assert name in shipped or name.rsplit(".", 1)[0] in shipped, f"{path.name} imports {name}, not shipped"
            elif top not in sys.stdlib_module_names and top != "__future__":
                third_party.add(top)
    dependencies = {re.split(r"[<>=!~ ;\[]", d)[0] for d in JUDGE_PROJECT["project"]["dependencies"]}
    extras = {re.split(r"[<>=!~ ;\[]", d)[0] for e in JUDGE_PROJECT["project"]["optional-dependencies"].values() for d in e}
    assert third_party <= dependencies | extras, f"imported but not declared: {third_party - dependencies - extras}"
    assert "matplotlib" not in dependencies and not (set(HEAVY) & dependencies)
    assert JUDGE_PROJECT["project"]["scripts"] == {"pyannote-verify": "verify:main"}
    assert ROOT_PROJECT["project"]["scripts"]["pyannote-verify"] == "verify:main"


def test_the_wheels_package_data_exists():
    """Every package-data pattern of the whole project matches files (the PLDA with its README)."""
    for package, patterns in ROOT_PROJECT["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list((REPO / package).glob(pattern)), f"{package}/{pattern} matches nothing"
    assert (REPO / "reference" / "pretrained" / "plda" / "README.md").is_file()


def test_the_judges_pdist_is_scipys_bit_for_bit():
    """harness.compare.pdist (no scipy in the judge's install) against scipy's, which pyannote's linkage uses."""
    from scipy.spatial.distance import pdist as scipy_pdist

    from harness.compare import pdist

    rng = np.random.default_rng(0)
    for case in range(40):
        n, d = int(rng.integers(0, 200)), int(rng.choice([1, 3, 16, 256]))
        X = rng.standard_normal((n, d)) * float(rng.choice([1e-3, 1.0, 30.0]))
        if case % 3 == 0:
            X = X.astype(np.float32)  # as dumped
        if case % 4 == 0 and n > 2:
            X[1] = X[0]  # exact ties
        expected = scipy_pdist(X.astype(np.float64)) if n else np.empty(0)
        assert np.array_equal(pdist(X, block=int(rng.choice([1, 7, 128]))), expected), (n, d)


def test_the_model_cache(monkeypatch, tmp_path):
    """$PYANNOTE_PORT_MODELS alone when set; else the user cache ($XDG_CACHE_HOME or ~/.cache) and a
    checkout's models/; the newest export across them; a one-line error naming the variable."""
    from port import __main__ as cli
    from port.runtime import ModelError

    monkeypatch.delenv(cli.MODELS_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.models_home() == tmp_path / "xdg" / "pyannote-port" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cli.models_home() == tmp_path / "home" / ".cache" / "pyannote-port" / "models"
    assert cli.model_roots() == [cli.models_home(), REPO / "models"]  # tests run from a checkout

    monkeypatch.setattr(cli, "CHECKOUT_MODELS", tmp_path / "checkout-models")
    older, newer = cli.CHECKOUT_MODELS / "a", cli.models_home() / "b"
    for index, folder in enumerate((older, newer)):
        folder.mkdir(parents=True)
        (folder / "segmentation.onnx").write_bytes(b"")
        os.utime(folder / "segmentation.onnx", (1e9 + index, 1e9 + index))
    assert cli.find_models(None) == newer
    os.utime(older / "segmentation.onnx", (2e9, 2e9))
    assert cli.find_models(None) == older

    monkeypatch.setenv(cli.MODELS_ENV, str(tmp_path / "given"))
    assert cli.model_roots() == [tmp_path / "given"]
    with pytest.raises(ModelError, match=f"no exported models in {tmp_path / 'given'}.*{cli.MODELS_ENV}"):
        cli.find_models(None)
    (tmp_path / "given" / "c").mkdir(parents=True)
    (tmp_path / "given" / "c" / "segmentation.onnx").write_bytes(b"")
    assert cli.find_models(None) == tmp_path / "given" / "c"


def test_export_writes_to_the_model_cache(monkeypatch, tmp_path):
    """`verify.py export` (and run) without --models-dir write where the port looks."""
    import verify as cli
    from reference import export

    asked = {}

    def fake_export(segmentation, embedding, out, exact_lstm=True):
        asked["out"] = Path(out)
        return {"segmentation": Path(out) / "x" / "segmentation.onnx"}

    monkeypatch.setattr(export, "export", fake_export)
    monkeypatch.setenv("PYANNOTE_PORT_MODELS", str(tmp_path / "cache"))
    cli.export_models(cli.parser().parse_args(["export"]), None, None)
    assert asked["out"] == tmp_path / "cache"
    asked.clear()
    cli.export_models(cli.parser().parse_args(["run", "--models-dir", str(tmp_path / "x")]), None, None)
    assert asked["out"] == tmp_path / "x"


# --------------------------------------------------------------------------- slow: fresh venvs
def _clean_env(**extra) -> dict:
    """The environment for a fresh venv's commands: nothing of this checkout on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PYANNOTE_METRICS_ENABLED="false", **extra)
    return env


def _copy_checkout(target: Path) -> Path:
    """The files a clone has (tracked, and untracked but not ignored): built there, so the checkout
    gets no build/ or egg-info, and nothing ignored (dumps, models, .venv) goes along."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                                capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # no git, or not a clone: the tree less what is generated
        shutil.copytree(REPO, target, dirs_exist_ok=True, symlinks=True, ignore=shutil.ignore_patterns(
            ".git", ".venv", "models", "dumps", "build", "__pycache__", "*.egg-info", ".pytest_cache"))
        return target
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def _venv(path: Path) -> tuple[Path, Path]:
    """A fresh venv (this interpreter's base Python, with pip): its bin/ and its site-packages."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, env=_clean_env(), timeout=300)
    site = subprocess.run([str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip()
    return path / "bin", Path(site)


def _pip_install(bin_dir: Path, *args: str) -> None:
    result = subprocess.run([str(bin_dir / "pip"), "install", "--quiet", *args], capture_output=True, text=True,
                            env=_clean_env(), timeout=PIP_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]


def _megabytes(folder: Path) -> tuple[float, float]:
    """(on disk, as du counts it; apparent) in MB."""
    disk = apparent = 0
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            info = os.lstat(os.path.join(root, name))
            disk += info.st_blocks * 512
            apparent += info.st_size if name in files else 0
    return disk / 1e6, apparent / 1e6


def _importable(bin_dir: Path, names) -> list[str]:
    code = f"import importlib.util as u; print(' '.join(m for m in {tuple(names)!r} if u.find_spec(m)))"
    return subprocess.run([str(bin_dir / "python"), "-c", code], check=True, capture_output=True, text=True,
                          env=_clean_env(), cwd="/").stdout.split()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return _copy_checkout(tmp_path_factory.mktemp("checkout"))


@pytest.fixture(scope="module")
def short_dumps(tmp_path_factory) -> dict[str, Path]:
    """A reference + port dump pair per pipeline of 5 s of audio, made by this checkout's verify.py run
    (the fixture models, noise measured): {pipeline: dump root holding reference/ and port/}."""
    roots = {}
    for pipeline in ("community-1", "3.1"):
        root = tmp_path_factory.mktemp(f"dumps-{pipeline}")
        result = subprocess.run([sys.executable, str(REPO / "verify.py"), "run", str(SHORT), "--pipeline", pipeline,
                                 "--dumps", str(root)], capture_output=True, text=True, cwd=REPO, timeout=1800)
        assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
        roots[pipeline] = root
    return roots


def _judge(bin_dir: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(bin_dir / "pyannote-verify"), *map(str, args)], capture_output=True, text=True,
                          env=_clean_env(COLUMNS="160"), cwd=cwd, timeout=600)


def _doctored(port_dump: Path, target: Path) -> Path:
    """A copy of the port's dump with one segmentation log-probability moved by 1e-3."""
    shutil.copytree(port_dump, target)
    path = target / "03-segmentation" / "out_log_probs.npy"
    values = np.load(path)
    values.flat[values.size // 2] += 1e-3
    np.save(path, values)
    return target


def _judges_correctly(bin_dir: Path, dumps: dict[str, Path], elsewhere: Path) -> None:
    recording = SHORT.stem
    for pipeline, root in dumps.items():
        reference, port = root / "reference" / recording, root / "port" / recording
        good = _judge(bin_dir, "compare", reference, port, "--json", elsewhere / f"{pipeline}.json", cwd=elsewhere)
        assert good.returncode == 0, (pipeline, good.stdout[-3000:], good.stderr[-2000:])
        assert json.loads((elsewhere / f"{pipeline}.json").read_text())["passed"] is True
        bad = _judge(bin_dir, "compare", reference, _doctored(port, elsewhere / f"doctored-{pipeline}"), cwd=elsewhere)
        assert bad.returncode == 1, (pipeline, bad.stdout[-3000:], bad.stderr[-2000:])
        assert "first stage over tolerance: 03-segmentation" in bad.stdout, bad.stdout[-3000:]
        listed = _judge(bin_dir, "inputs", "06-fbank", reference, cwd=elsewhere)
        assert listed.returncode == 0 and "04-multilabel/out_multilabel" in listed.stdout, listed.stdout + listed.stderr


@pytest.mark.slow
def test_the_judge_installs_alone_and_judges(built, short_dumps, tmp_path):
    bin_dir, site = _venv(tmp_path / "venv")
    _pip_install(bin_dir, str(built / "judge"))
    assert _importable(bin_dir, HEAVY) == [], "the judge's install holds a heavy package"
    assert _importable(bin_dir, ("numpy", "rich", "harness.compare", "port.dumps", "verify")) == [
        "numpy", "rich", "harness.compare", "port.dumps", "verify"]
    assert (site / "harness" / "pyproject.toml").is_file(), "the tolerances did not travel with the judge"
    disk, apparent = _megabytes(site)
    print(f"judge's site-packages: {disk:.1f} MB on disk, {apparent:.1f} MB apparent")
    assert disk <= JUDGE_LIMIT_MB, f"the judge's site-packages is {disk:.0f} MB (apparent {apparent:.0f}) > {JUDGE_LIMIT_MB}"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _judges_correctly(bin_dir, short_dumps, elsewhere)
    # what the judge alone cannot do: one line, exit 2
    run = _judge(bin_dir, "run", SHORT, "--dumps", elsewhere / "d", cwd=elsewhere)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "Traceback" not in run.stderr, run.stderr
    assert not (elsewhere / "d").exists()


@pytest.mark.slow
def test_the_whole_project_installs_not_editable_and_runs_from_elsewhere(built, short_dumps, tmp_path):
    """`pip install .` (not editable), both console scripts from another directory; the port finds the
    export this checkout's `verify.py export` wrote to the user cache, and its RTTM is the checkout's."""
    cache = tmp_path / "xdg-cache"
    exported = subprocess.run([sys.executable, str(REPO / "verify.py"), "export"], capture_output=True, text=True,
                              cwd=REPO, env={**os.environ, "XDG_CACHE_HOME": str(cache)}, timeout=1800)
    assert exported.returncode == 0, exported.stderr[-2000:]
    exports = list((cache / "pyannote-port" / "models").glob("*/segmentation.onnx"))
    assert len(exports) == 1, exports

    bin_dir, site = _venv(tmp_path / "venv")
    _pip_install(bin_dir, str(built))
    assert not list(site.glob("__editable__*")) and (site / "port" / "pipeline.py").is_file()
    assert (site / "reference" / "pretrained" / "plda" / "README.md").is_file()
    assert (site / "harness" / "pyproject.toml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = subprocess.run([str(bin_dir / "pyannote-port"), str(SAMPLE), "--rttm", "x.rttm", "--quiet"],
                          capture_output=True, text=True, cwd=elsewhere, env=_clean_env(XDG_CACHE_HOME=str(cache)),
                          timeout=900)
    assert port.returncode == 0, port.stderr[-3000:]
    here = subprocess.run([sys.executable, "-m", "port", str(SAMPLE), "--models", str(exports[0].parent), "--quiet"],
                          capture_output=True, text=True, cwd=REPO, timeout=900)
    assert here.returncode == 0, here.stderr[-2000:]
    rttm = (elsewhere / "x.rttm").read_text()
    assert rttm.startswith("SPEAKER sample 1 ") and rttm == here.stdout, "the installed port's RTTM differs"

    # $PYANNOTE_PORT_MODELS instead of the cache; and, empty, a one-line error naming it
    given = subprocess.run([str(bin_dir / "pyannote-port"), str(SHORT), "--quiet"], capture_output=True, text=True,
                           cwd=elsewhere, env=_clean_env(PYANNOTE_PORT_MODELS=str(cache / "pyannote-port" / "models"),
                                                         XDG_CACHE_HOME=str(tmp_path / "empty")), timeout=900)
    assert given.returncode == 0 and given.stdout.startswith("SPEAKER"), given.stderr[-2000:]
    none = subprocess.run([str(bin_dir / "pyannote-port"), str(SHORT), "--quiet"], capture_output=True, text=True,
                          cwd=elsewhere, env=_clean_env(PYANNOTE_PORT_MODELS=str(tmp_path / "empty")), timeout=300)
    assert none.returncode == 2 and none.stderr.startswith("error: no exported models") and "PYANNOTE_PORT_MODELS" in none.stderr

    _judges_correctly(bin_dir, short_dumps, elsewhere)
