"""What the Prometheus and OpenTelemetry sides share: the missing-extra error."""

from __future__ import annotations

import pytest

from aiohttp_helpers._observe import missing_extra


@pytest.mark.parametrize(
    ("extra", "package"),
    [
        pytest.param("prometheus", "prometheus-client", id="prometheus"),
        pytest.param("opentelemetry", "opentelemetry-api", id="opentelemetry"),
    ],
)
def test_missing_extra_names_the_package_and_the_install_line(extra: str, package: str) -> None:
    error = missing_extra(extra, package)
    assert isinstance(error, ImportError)
    assert str(error) == (
        f"aiohttp_helpers.{extra} needs {package}: pip install 'aiohttp-helpers[{extra}]'"
    )
