"""The toolkit as an installed package: every package folder is in the distribution, the
version is written once, the trainer does not import matplotlib, and (slow) a wheel built
from the checkout, installed non-editable into a fresh virtual environment, runs `qgan train`,
`submit --wait`, `report`, `sample`, `figures` and `export` from a folder outside the
checkout, with `pip check` clean."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import tomli_w

from trainer_utils import ROOT, TINY

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ROOTS = ("qgan", "jobs", "analysis", "reports")


def _package_folders() -> set[str]:
    """Every folder under the toolkit's roots that holds Python files, dotted."""
    out = set()
    for root in ROOTS:
        for py in (ROOT / root).rglob("*.py"):
            if "__pycache__" not in py.parts:
                out.add(".".join(py.parent.relative_to(ROOT).parts))
    return out


def test_every_package_folder_is_found():
    from setuptools import find_packages

    find = PYPROJECT["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(ROOT), include=find["include"]))
    folders = _package_folders()
    missing_init = sorted(f for f in folders
                          if not (ROOT / f.replace(".", "/") / "__init__.py").is_file())
    assert not missing_init, f"add an __init__.py (else the wheel leaves them out): {missing_init}"
    assert folders <= found, sorted(folders - found)
    assert {"jobs.schedulers", "jobs.commands", "qgan.circuits", "qgan.commands", "analysis.commands",
            "reports.commands", "reports.figures"} <= found
    assert not any(p.startswith(("tests", "benchmarks")) for p in found)


def test_report_assets_are_package_data():
    import fnmatch

    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["reports"]
    assets = [p.relative_to(ROOT / "reports").as_posix()
              for p in (ROOT / "reports").rglob("*")
              if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert assets and all(any(fnmatch.fnmatch(a, pat) for pat in patterns) for a in assets), \
        assets


def test_version_is_written_once():
    import qgan

    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "qgan.__version__"}
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "--version"], capture_output=True,
                          text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == f"qgan {qgan.__version__}"


def test_the_trainer_does_not_import_matplotlib_or_sklearn():
    """Keras imports matplotlib.pyplot and scikit-learn when they are installed (+0.6 s per
    attempt each); qgan/tflib.py keeps them out, and leaves them importable afterwards."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    code = ("import sys; import qgan.trainer, qgan.sampling; "
            "assert 'tensorflow' in sys.modules and 'keras' in sys.modules; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('matplotlib', 'sklearn'))); "
            "import matplotlib.pyplot, sklearn.mixture; print('importable')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["[]", "importable"]


# ---- the wheel, installed -------------------------------------------------------------------

def _copy_checkout(dst: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache", "tmp")
    return Path(shutil.copytree(ROOT, dst, ignore=ignore))


def _fresh_venv(path: Path) -> Path:
    """A new virtual environment (no pip of its own) that sees this interpreter's installed
    dependencies, as `--system-site-packages` would see a system Python's: a .pth file lists
    this environment's site-packages after the new one's own, and .pth files there are not
    run (so an editable install of the checkout stays invisible). Nothing is downloaded."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                          "['purelib'])"], capture_output=True, text=True, check=True)
    parents = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]]
               if Path(p).is_dir()]
    Path(own.stdout.strip(), "_parent_environment.pth").write_text(
        "\n".join(dict.fromkeys(parents)) + "\n")
    return python


def _clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH: nothing from the checkout may leak in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    """This interpreter's pip, run for `python`'s environment (which has no pip)."""
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python),
                           "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=600, env=_clean_env())


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    src = _copy_checkout(tmp_path / "src")
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "--disable-pip-version-check", "-w",
                            str(dist), str(src)], capture_output=True, text=True, timeout=600,
                           env=_clean_env())
    assert built.returncode == 0, built.stderr[-3000:]
    import qgan

    wheel = dist / f"qgan_toolkit-{qgan.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("jobs/schedulers/local.py", "jobs/schedulers/slurm.py", "reports/commands/figures.py",
                   "qgan/__main__.py", "reports/__main__.py",
                   "qgan/circuits/compiled.py", "reports/figures/charts.py",
                   "reports/templates/report.html.j2", "reports/static/report.js",
                   "reports/vendor/uplot/uPlot.iife.min.js", "reports/vendor/uplot/LICENSE"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]

    python = _fresh_venv(tmp_path / "venv")
    # --force-reinstall: the parent environment may hold an (editable) qgan-toolkit of the
    # same version, which pip would otherwise take for this one
    installed = _pip(python, "install", "--no-deps", "--no-index", "--force-reinstall",
                     str(wheel))
    assert installed.returncode == 0, installed.stderr[-3000:]
    check = _pip(python, "check")
    assert check.returncode == 0, check.stdout + check.stderr

    work = tmp_path / "elsewhere"  # not the checkout, not its copy
    work.mkdir()
    env = _clean_env()
    qgan_bin = python.parent / "qgan"

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run([str(qgan_bin), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=timeout)
        assert done.returncode == 0, f"qgan {' '.join(args)}:\n{done.stderr[-3000:]}"
        return done

    where = subprocess.run([str(python), "-c", "import qgan, jobs.schedulers, reports; "
                            "print(qgan.__file__); print(reports.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(Path(p).is_relative_to(tmp_path / "venv") for p in where), where
    assert run("--version").stdout.strip() == f"qgan {qgan.__version__}"

    config = work / "tiny.toml"
    config.write_text(tomli_w.dumps(TINY))
    run("train", str(config), "--run-dir", "one")
    assert json.loads((work / "one" / "run.json").read_text())["versions"]["qgan-toolkit"] \
        == qgan.__version__
    run("submit", str(config), "--executor", "local", "--runs-root", "runs", "--name", "exp",
        "--wait")
    assert (work / "runs" / "exp" / "report.html").is_file()
    report = run("report", "one").stdout.strip().splitlines()[-1]
    assert "uPlot" in Path(work / report if not Path(report).is_absolute() else report
                           ).read_text()
    run("sample", "one", "-n", "50", "-o", "samples.parquet")
    assert (work / "samples.parquet").is_file()
    figures = run("figures", "one", "-o", "figs").stdout.split()
    assert any(f.endswith("w1.pdf") for f in figures)
    assert (work / "figs" / "samples-one.gif").is_file()
    run("export", "runs/exp", "--tensorboard", "-o", "tb")
    assert list((work / "tb").rglob("events.out.tfevents.*"))
