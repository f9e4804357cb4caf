"""The package works outside its checkout: build the wheel, install it into a fresh venv in a
temporary folder, and run `propensity demo` there from an empty working directory.

Nothing is downloaded: the wheel is built without build isolation (the test environment's own
setuptools) and installed with ``--no-index --no-deps``. The fresh venv reaches the heavy
dependencies (pandas, lightgbm, mlflow, ...) through a ``.pth`` file naming the test
environment's site-packages: a folder listed in a ``.pth`` is appended to ``sys.path`` but the
``.pth`` files inside it are not processed, so the editable install of the checkout stays out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
# setuptools reads `project.license = "Apache-2.0"` (a PEP 639 SPDX string) from version 77 on.
MIN_SETUPTOOLS = 77
# The demo's outputs, relative to its working directory.
DEMO_WORLD = Path("data/demo_world")
TARGET_LIST = Path("data/target_list.csv")
REPORT = Path("models/demo_run/report.html")
MLFLOW_DB = Path("models/mlflow.db")


def _tail(result: subprocess.CompletedProcess, chars: int = 3000) -> str:
    return (
        f"exit code {result.returncode}\n"
        f"--- stdout (tail) ---\n{(result.stdout or '')[-chars:]}\n"
        f"--- stderr (tail) ---\n{(result.stderr or '')[-chars:]}"
    )


def _run(args: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, **kwargs
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed\n{_tail(result)}"
    return result


def _clean_env() -> dict[str, str]:
    """This environment less anything that would point the package back at the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "VIRTUAL_ENV"}
    return {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not key.startswith("PROPENSITY_")
    }


def _repo_outputs() -> set[Path]:
    """Files the demo could have written into the checkout (its data/ and models/, a root store)."""
    found: set[Path] = set()
    for folder in ("data", "models"):
        for root, _, files in os.walk(REPO / folder):
            found.update(Path(root, name) for name in files)
    found.update(p for p in (REPO / "mlflow.db", REPO / "mlruns") if p.exists())
    return found


def _source_copy(dest: Path) -> Path:
    """What the wheel is built from, copied so an in-tree build leaves no build/ or egg-info in
    the checkout (and other people's edits during the build cannot tear it)."""
    dest.mkdir()
    shutil.copy2(REPO / "pyproject.toml", dest)
    for pattern in ("README*", "LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*"):
        for path in REPO.glob(pattern):
            if path.is_file():
                shutil.copy2(path, dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "src", dest / "src", ignore=ignore)
    return dest


@pytest.mark.slow(seconds=50)
def test_wheel_installed_in_a_fresh_venv_runs_the_demo_outside_the_checkout(tmp_path):
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now

    outputs_before = _repo_outputs()

    # 1. Build the wheel with the test environment's setuptools, no network.
    probe = _run([sys.executable, "-c", "import setuptools; print(setuptools.__version__)"])
    version = probe.stdout.strip()
    if int(version.split(".")[0]) < MIN_SETUPTOOLS:
        pytest.fail(
            f"setuptools {version} in {sys.prefix} cannot build this wheel without build "
            f"isolation (pyproject.toml needs setuptools>={MIN_SETUPTOOLS}); the dev extras must "
            f"bring it: `make install` after adding 'setuptools>={MIN_SETUPTOOLS}' to them"
        )
    wheels = tmp_path / "wheels"
    source = _source_copy(tmp_path / "source")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", wheels, source],
        cwd=tmp_path,
    )  # fmt: skip
    built = sorted(wheels.glob("propensity-*.whl"))
    assert len(built) == 1, f"expected one propensity wheel in {wheels}, found {built}"
    wheel = built[0]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for config in ("model", "scorecard", "scoring"):
        assert f"propensity/configs/{config}.yaml" in names, f"{config}.yaml is not in {wheel.name}"
    # Every data file of the source package ships (a template or config left out of
    # [tool.setuptools.package-data] works in the checkout and fails once installed).
    package = source / "src"
    data_files = {
        path.relative_to(package).as_posix()
        for path in (package / "propensity").rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"}
    }
    missing = sorted(data_files - names)
    assert not missing, f"package data missing from {wheel.name}: {missing}"
    lap("build wheel")

    # 2. A fresh venv in a temporary folder, the wheel installed into it from the file alone.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    lap("create venv")
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--no-cache-dir", wheel],
        cwd=tmp_path,
    )  # fmt: skip
    lap("install wheel")
    fresh_site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    ours = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (fresh_site / "_propensity_test_deps.pth").write_text("".join(f"{p}\n" for p in ours))

    # Imported from the fresh venv, configs read from the installed package data.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env()
    probe = _run(
        [
            python,
            "-c",
            "import propensity, propensity.settings as s; print(propensity.__file__); "
            "print(len(s.packaged_config_text('model')))",
        ],
        cwd=elsewhere,
        env=env,
    )
    location, config_chars = probe.stdout.split()
    location = Path(location).resolve()
    assert location.is_relative_to(fresh_site.resolve()), (
        f"propensity imported from {location}, not the fresh venv's {fresh_site}"
    )
    assert not location.is_relative_to(REPO), f"propensity imported from the checkout: {location}"
    assert int(config_chars) > 0, "the packaged model.yaml is empty"
    lap("import check")

    # 3. The installed entry point, run from an empty folder that is not the checkout.
    workdir = tmp_path / "work"
    workdir.mkdir()
    entry = venv / "bin" / "propensity"
    assert entry.is_file(), f"the wheel installed no console script at {entry}"
    demo = subprocess.run(
        [str(entry), "demo", "--accounts", "2000"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    lap("demo")
    spent = ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
    assert demo.returncode == 0, f"propensity demo failed in {workdir} ({spent} s)\n{_tail(demo)}"

    world = workdir / DEMO_WORLD
    assert world.is_dir() and any(world.iterdir()), f"no world in {world}\n{_tail(demo)}"
    for output in (TARGET_LIST, REPORT, MLFLOW_DB):
        assert (workdir / output).is_file(), f"the demo wrote no {output}\n{_tail(demo)}"
    targets = pd.read_csv(workdir / TARGET_LIST, dtype=str, keep_default_na=False)
    assert len(targets) > 0, "the target list is empty"
    assert "model_version" in targets.columns, f"no model_version column: {list(targets.columns)}"
    assert (targets["model_version"].str.strip() != "").all(), "rows without a model_version"

    new_in_repo = sorted(str(p.relative_to(REPO)) for p in _repo_outputs() - outputs_before)
    assert not new_in_repo, f"the demo wrote into the checkout: {new_in_repo}"
    print(f"timings (s): {spent}")
