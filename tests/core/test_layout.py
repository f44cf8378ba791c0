"""The tests mirror the package: every module has a test area, and test modules stand alone.

* every module of ``aiohttp_helpers`` is mapped to the test folder (or file) that covers it,
  and that folder holds tests;
* no test module imports another test module (shared code lives in ``tests/support/``);
* outside ``tests/support/`` there are only test modules, ``conftest.py`` and
  ``__init__.py`` files: helpers, apps run as processes and peers all live in the support
  package.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

import aiohttp_helpers

TESTS = Path(__file__).resolve().parent.parent
SUPPORT = TESTS / "support"

#: Where the tests of each package module live, relative to ``tests/``: a folder (every
#: test module in it) or one test file. A subpackage maps as a whole, by its name. Modules
#: named here but not (yet) in the package are allowed: the map is written against the
#: module map of the architecture notes.
TEST_AREAS: dict[str, str] = {
    "aiohttp_helpers": "core/test_init.py",
    "aiohttp_helpers._closing": "core/test_closing.py",
    "aiohttp_helpers._compat": "core/test_compat.py",
    "aiohttp_helpers._metric_names": "observability",
    "aiohttp_helpers._observe": "observability/test_observe.py",
    "aiohttp_helpers._validate": "core/test_validate.py",
    "aiohttp_helpers._words": "core/test_words.py",
    "aiohttp_helpers.broadcast": "websocket/test_websocket_fanout.py",
    "aiohttp_helpers.broadcast_redis": "deploy/test_redis_broadcast.py",
    "aiohttp_helpers.config": "core/test_config.py",
    "aiohttp_helpers.errors": "core/test_errors_tree.py",
    "aiohttp_helpers.expect": "uploads/test_expect_continue.py",
    "aiohttp_helpers.gunicorn": "deploy",
    "aiohttp_helpers.health": "lifecycle/test_health.py",
    "aiohttp_helpers.inflight": "lifecycle/test_inflight.py",
    "aiohttp_helpers.keys": "core",
    "aiohttp_helpers.lifecycle": "lifecycle",
    "aiohttp_helpers.middleware": "core/test_middleware.py",
    "aiohttp_helpers.negotiation": "core",
    "aiohttp_helpers.opentelemetry": "observability/test_opentelemetry.py",
    "aiohttp_helpers.origins": "websocket/test_websocket_origin.py",
    "aiohttp_helpers.plugin": "core/test_plugin.py",
    "aiohttp_helpers.problem": "core",
    "aiohttp_helpers.prometheus": "observability/test_prometheus.py",
    "aiohttp_helpers.resumable": "resumable",
    "aiohttp_helpers.scope": "core/test_middleware.py",
    "aiohttp_helpers.serving": "lifecycle",
    "aiohttp_helpers.signals": "lifecycle/test_signals.py",
    "aiohttp_helpers.streams": "lifecycle/test_streams.py",
    "aiohttp_helpers.testing": "core/test_testing.py",
    "aiohttp_helpers.uploads": "uploads",
    "aiohttp_helpers.websocket": "websocket",
}

#: Folders of ``tests/`` besides the areas above: support code, and the areas of the
#: documentation and packaging checks.
OTHER_FOLDERS = {"support", "examples", "browser", "docs", "packaging"}


def package_modules() -> list[str]:
    found = [aiohttp_helpers.__name__]
    for info in pkgutil.walk_packages(aiohttp_helpers.__path__, f"{aiohttp_helpers.__name__}."):
        found.append(info.name)
    return sorted(found)


def area_of(module: str) -> str | None:
    """The test area of ``module``: its own entry, else its nearest mapped subpackage's.

    The top package's entry covers ``__init__.py`` alone: a new top-level module needs an
    entry of its own.
    """
    if module in TEST_AREAS:
        return TEST_AREAS[module]
    name = module.rpartition(".")[0]
    while "." in name:
        if name in TEST_AREAS:
            return TEST_AREAS[name]
        name = name.rpartition(".")[0]
    return None


def modules_of_tests(under: Path = TESTS) -> list[Path]:
    return sorted(p for p in under.rglob("test_*.py") if SUPPORT not in p.parents)


def python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its package."""
    package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base)
                target = f"{prefix}.{node.module}" if node.module else prefix
            else:
                target = node.module or ""
            found.add(target)
            # ``from tests.uploads import test_x`` imports a module through a package.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def test_every_package_module_has_a_test_area() -> None:
    unmapped = [m for m in package_modules() if area_of(m) is None]
    assert not unmapped, f"add these modules to TEST_AREAS in {Path(__file__).name}: {unmapped}"


@pytest.mark.parametrize("module", package_modules())
def test_the_test_area_of_each_module_holds_tests(module: str) -> None:
    area = area_of(module)
    assert area is not None
    where = TESTS / area
    if where.suffix == ".py":
        assert where.is_file(), f"{module}: {where} is missing"
    else:
        assert where.is_dir(), f"{module}: {where} is missing"
        assert modules_of_tests(where), f"{module}: no test module in {where}"


def test_every_test_folder_is_an_area_of_the_package() -> None:
    areas = {area.split("/")[0] for area in TEST_AREAS.values()}
    for folder in sorted(p for p in TESTS.iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert folder.name in areas | OTHER_FOLDERS, f"{folder} mirrors no part of the package"
        assert (folder / "__init__.py").is_file(), f"{folder} has no __init__.py"


def test_no_test_module_imports_another_test_module() -> None:
    offenders = {
        str(path.relative_to(TESTS.parent)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[0] == TESTS.name
            and any(part.startswith("test_") for part in name.split("."))
        )
        for path in python_files()
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert not offenders, f"import from tests.support instead: {offenders}"


def test_support_code_lives_only_in_tests_support() -> None:
    allowed = {"__init__.py", "conftest.py"}
    stray = [
        str(path.relative_to(TESTS.parent))
        for path in python_files()
        if SUPPORT not in path.parents
        and path.name not in allowed
        and not path.name.startswith("test_")
    ]
    assert not stray, f"move these into tests/support/: {stray}"


def test_test_modules_live_in_an_area_folder() -> None:
    flat = [p.name for p in modules_of_tests() if p.parent == TESTS]
    assert not flat, f"put these into tests/<area>/: {flat}"


def test_support_modules_are_not_collected_as_tests() -> None:
    named_like_tests = [p.name for p in SUPPORT.rglob("test_*.py")]
    assert not named_like_tests


# -- the direction of imports (docs/architecture.md) ----------------------------------------

PACKAGE = Path(aiohttp_helpers.__file__).resolve().parent
#: Modules every other part may import; they import no feature.
FOUNDATIONS = {
    "keys", "config", "errors", "problem", "negotiation", "serving", "_compat", "_validate",
    "_words", "_closing", "_metric_names", "origins",
}  # fmt: skip
#: The features, each a module or subpackage of its own.
FEATURES = {"lifecycle", "uploads", "resumable", "websocket", "streams", "health", "expect"}


def runtime_imports(path: Path) -> set[str]:
    """The parts of the package ``path`` imports when it runs (``TYPE_CHECKING`` left out)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    package = list(parts if path.name == "__init__.py" else parts[:-1])
    package = [p for p in package if p != "__init__"]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    guards = {"TYPE_CHECKING", "typing.TYPE_CHECKING"}
    typing_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in guards
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.level or id(node) in typing_only:
            continue
        base = package[: len(package) - node.level + 1]
        target = [*base, *(node.module.split(".") if node.module else [])]
        if target:
            found.add(target[0])
        else:  # ``from . import x`` at the top of the package
            found.update(alias.name for alias in node.names)
    return found


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_foundations_import_no_feature() -> None:
    wrong = {
        str(path.relative_to(PACKAGE)): sorted(runtime_imports(path) - FOUNDATIONS)
        for path in package_files()
        if part_of(path) in FOUNDATIONS
    }
    wrong = {path: names for path, names in wrong.items() if names}
    assert not wrong, f"a foundation imports more than foundations: {wrong}"


def test_features_never_import_the_plugin() -> None:
    wrong = sorted(
        str(path.relative_to(PACKAGE))
        for path in package_files()
        if part_of(path) != "plugin" and part_of(path) != "__init__"
        and "plugin" in runtime_imports(path)
    )  # fmt: skip
    assert not wrong, f"only __init__ imports plugin: {wrong}"


def test_the_lifecycle_never_imports_websockets_or_streams() -> None:
    wrong = sorted(
        str(path.relative_to(PACKAGE))
        for path in package_files()
        if part_of(path) == "lifecycle"
        and runtime_imports(path) & {"websocket", "streams", "uploads", "resumable"}
    )
    assert not wrong, f"setup() hands the lifecycle its stop steps instead: {wrong}"


@pytest.mark.parametrize("feature", sorted(FEATURES))
def test_features_reach_each_other_only_as_drawn(feature: str) -> None:
    # The drawn edges: resumable stores and hands over files with the uploads spooler, and
    # expect answers 100-continue for upload routes by their upload limits.
    allowed = {feature} | ({"uploads"} if feature in {"resumable", "expect"} else set())
    wrong = {
        str(path.relative_to(PACKAGE)): sorted((runtime_imports(path) & FEATURES) - allowed)
        for path in package_files()
        if part_of(path) == feature
    }
    wrong = {path: names for path, names in wrong.items() if names}
    assert not wrong, f"{feature} imports another feature: {wrong}"
