"""The published artifacts: the wheel holds the package and nothing else; the sdist builds it.

Both are built the way ``make dist`` builds them (``python -m build --no-isolation``: the sdist,
then the wheel from the sdist) into a temporary folder, unless ``AIOHTTP_HELPERS_DIST`` names a
folder that already holds them.
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import tarfile
import zipfile
from email.message import Message
from pathlib import Path, PurePosixPath

import pytest

import aiohttp_helpers

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "aiohttp_helpers"
VERSION = aiohttp_helpers.__version__
DIST_INFO = f"aiohttp_helpers-{VERSION}.dist-info"

#: The user extras; development tools live in dependency groups, never here.
EXTRAS = {"brotli", "zstd", "redis", "gunicorn", "prometheus", "opentelemetry"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("AIOHTTP_HELPERS_DIST")
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    [found] = dist.glob(f"aiohttp_helpers-{VERSION}-py3-none-any.whl")
    return found


@pytest.fixture(scope="module")
def sdist(dist: Path) -> Path:
    [found] = dist.glob(f"aiohttp_helpers-{VERSION}.tar.gz")
    return found


@pytest.fixture(scope="module")
def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(f"{DIST_INFO}/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def _package_files() -> set[str]:
    """Every file of the package's source tree, as a path inside the wheel."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_source_tree_has_modules_and_the_typing_marker() -> None:
    files = _package_files()
    assert "aiohttp_helpers/py.typed" in files
    assert "aiohttp_helpers/__init__.py" in files
    assert all(name.endswith(".py") for name in files - {"aiohttp_helpers/py.typed"})


def test_the_wheel_holds_the_package_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    package = {n for n in names if not n.startswith(f"{DIST_INFO}/")}
    assert package == _package_files()
    assert names - package == {
        f"{DIST_INFO}/METADATA",
        f"{DIST_INFO}/WHEEL",
        f"{DIST_INFO}/RECORD",
        f"{DIST_INFO}/licenses/LICENSE",
    }


def test_the_metadata_is_what_pypi_shows(metadata: Message) -> None:
    assert metadata["Name"] == "aiohttp-helpers"
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Author"] == "aiohttp-helpers developers"
    assert set(metadata.get_all("Provides-Extra") or []) == EXTRAS
    requires = metadata.get_all("Requires-Dist") or []
    assert all("extra ==" in r or r.startswith(("aiohttp", "aiosignal")) for r in requires)
    assert not [r for r in requires if r.split(">")[0].lower() in {"pytest", "mypy", "ruff"}]
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Source", "Documentation", "Changelog", "Issues"}
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = set(metadata.get_all("Classifier") or [])
    assert {"Framework :: aiohttp", "Typing :: Typed"} <= classifiers
    minor = sys.version_info[:2]
    assert f"Programming Language :: Python :: {minor[0]}.{minor[1]}" in classifiers


def test_the_long_description_has_no_relative_image(metadata: Message) -> None:
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert description.lstrip().startswith("# aiohttp-helpers")
    for line in description.splitlines():
        if "![" in line:
            assert "](https://" in line, line


def test_twine_check_passes(wheel: Path, sdist: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_sdist_holds_the_sources_and_no_local_state(sdist: Path) -> None:
    top = PurePosixPath(f"aiohttp_helpers-{VERSION}")
    with tarfile.open(sdist) as tf:
        names = {PurePosixPath(n).relative_to(top).as_posix() for n in tf.getnames()}
    for wanted in ("pyproject.toml", "LICENSE", "README.md", "CHANGES.rst", "PKG-INFO"):
        assert wanted in names
    assert _package_files() <= names
    assert any(n.startswith("tests/") for n in names)
    assert any(n.startswith("examples/") for n in names)
    unwanted = (".venv/", "node_modules/", "dist/", ".git/", "docs/_build/")
    assert not [n for n in names if n.startswith(unwanted) or "__pycache__" in n]
