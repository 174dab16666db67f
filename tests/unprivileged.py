"""netmon installed where an unprivileged user can run it, wherever the checkout is.

A test that drops root's privileges (setpriv) cannot run this checkout's `.venv/bin/netmon` when
the checkout is in a directory only root can enter, such as root's home (mode 700), where most
people clone. Such a test runs netmon as it is installed for a service instead: a virtual
environment in a temporary directory that everyone can read, made with a Python that the
unprivileged user runs as we do, netmon installed in it (not editable) from a wheel built from
this checkout, and netmon's dependencies copied from this environment.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent
NOBODY = ("--reuid=65534", "--regid=65534", "--clear-groups")


def as_nobody(*command: str) -> list[str]:
    return [require_program("setpriv"), *NOBODY, *command]


def python_for_nobody() -> str:
    """A Python of this version that `nobody` runs as we do: the one behind this environment
    unless nobody cannot read it (pyenv's under /root), then the system's."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = getattr(sys, "_base_executable", sys.executable)
    candidates = [base, *(f"{d}/python{version}" for d in ("/usr/bin", "/usr/local/bin"))]
    probe = "import sys; print(sys.version, sys.base_prefix)"
    seen: list[str] = []
    for candidate in dict.fromkeys(candidates):
        if not os.access(candidate, os.X_OK):
            continue
        ours = subprocess.run([candidate, "-c", probe], capture_output=True, text=True)
        theirs = subprocess.run(
            as_nobody(candidate, "-c", probe), capture_output=True, text=True, cwd="/"
        )
        seen.append(f"{candidate}: {ours.stdout.strip()!r} for root, "
                    f"{(theirs.stdout or theirs.stderr).strip()!r} for nobody")  # fmt: skip
        same = theirs.returncode == 0 and theirs.stdout == ours.stdout
        if same and ours.stdout.startswith(f"{version}."):
            return candidate
    raise AssertionError(f"no Python {version} that nobody runs as root does: {seen}")


def runtime_distributions() -> list[importlib.metadata.Distribution]:
    """The installed distributions netmon needs at run time (no extras), netmon excluded."""
    found: dict[str, importlib.metadata.Distribution] = {}
    wanted = ["netmon"]
    while wanted:
        name = canonicalize_name(wanted.pop())
        if name in found:
            continue
        found[name] = distribution = importlib.metadata.distribution(name)
        for spec in distribution.requires or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    del found["netmon"]
    return list(found.values())


def copy_distribution(distribution: importlib.metadata.Distribution, site: Path) -> None:
    """Copy the files a distribution installed in our site-packages into `site`."""
    ours = Path(sysconfig.get_path("purelib")).resolve()
    for file in distribution.files or []:
        source = Path(os.path.normpath(distribution.locate_file(file)))
        if not source.is_relative_to(ours) or not source.is_file():
            continue  # console scripts in bin/, and files the RECORD lists but removed
        target = site / source.relative_to(ours)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def package_sources(destination: Path) -> Path:
    """What building netmon's wheel reads: pyproject.toml, README.md, and its packages."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    destination.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, destination / name)
    for entry in ROOT.iterdir():
        if entry.is_dir() and any(fnmatch.fnmatch(entry.name, p) for p in patterns):
            shutil.copytree(
                entry, destination / entry.name,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )  # fmt: skip
    return destination


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout.strip()


def install_netmon(base: Path) -> Path:
    """netmon installed in a virtual environment under `base`; its console script."""
    venv = base / "venv"
    run(python_for_nobody(), "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
    for distribution in runtime_distributions():
        copy_distribution(distribution, site)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    wheels = base / "wheels"
    # No network: built with this environment's setuptools (the `test` extra brings one that
    # builds wheels on its own), installed without dependencies (copied above).
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir",
        str(wheels), str(package_sources(base / "source")))  # fmt: skip
    (wheel,) = wheels.glob("netmon-*.whl")
    run(*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    shutil.rmtree(base / "source")
    for directory, _, files in os.walk(base):  # readable and enterable by everyone
        os.chmod(directory, 0o755)  # noqa: S103
        for name in files:
            path = Path(directory, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444)
    return venv / "bin" / "netmon"


@pytest.fixture(scope="session")
def netmon_for_nobody() -> Iterator[Path]:
    """The `netmon` program of an installed netmon that an unprivileged user can run."""
    with tempfile.TemporaryDirectory(prefix="netmon-installed-") as base:
        yield install_netmon(Path(base))
