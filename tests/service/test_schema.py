"""The OpenAPI schema is complete and the API keeps to it (schemathesis, a bounded number of examples)."""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed (dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from stemscribe.service import create_app  # noqa: E402
from stemscribe.settings import Settings  # noqa: E402


def _app(tmp_path_factory: Any) -> Any:
    data = tmp_path_factory.mktemp("schema")
    return create_app(
        Settings(
            data_dir=data,
            workers=0,
            secret_key="k",
            rate_limit_per_s=0.0,
            sync_wait_s=0.5,
            aimusic_wait_s=0.2,
        )
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: Any) -> Any:
    return _app(tmp_path_factory)


@pytest.fixture(scope="module")
def key(app: Any) -> str:
    return app.state.ctx.store.create_key("schemathesis")[1]  # type: ignore[no-any-return]


def test_every_route_is_documented(app: Any) -> None:
    spec = app.openapi()
    paths = spec["paths"]
    for route in (
        "/v1/uploads",
        "/v1/transcriptions",
        "/v1/transcriptions/{task_id}.mid",
        "/suno/midi",
        "/suno/tasks",
        "/suno/upload",
        "/suno/audios",
        "/api/v1/suno/midi",
        "/api/v1/vocal-removal/generate",
        "/api/v1/midi/generate",
        "/api/v1/midi/record-info",
        "/health",
        "/metrics",
    ):
        assert route in paths, route
    body = paths["/v1/transcriptions"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_api_conforms_to_its_schema(app: Any, key: str) -> None:
    """Generated requests for every operation: no 5xx, documented statuses, bodies matching the schema."""
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def check(case: Any) -> None:
            # Schema-valid is not audio-valid: random bytes are rightly refused with 400, so the
            # "positive data must be accepted" check does not apply to this API.
            case.call_and_validate(
                headers={"Authorization": f"Bearer {key}"}, excluded_checks=[positive_data_acceptance]
            )

        check()
