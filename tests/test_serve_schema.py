"""`thrift serve` against its own OpenAPI document, with schemathesis (property tests).

Generated requests, valid and invalid, with the admin key: no 500 ever, every status and
body as documented, and no request that breaks the schema accepted. Not checked:
"every valid request is accepted" (schemathesis' positive_data_acceptance), because a
request the schema allows can still be refused by what the schema cannot say: an
embedding of zeros (it points nowhere), a `since` date that does not exist, a `forget`
with neither `query` nor `id`."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from serve_servers import ADMIN_KEY

from thrift_cli.server.app import create_app
from thrift_cli.server.auth import digest as admin_digest
from thrift_cli.server.engine import Engine


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> schemathesis.BaseSchema:
    home: Path = tmp_path_factory.mktemp("schema-home")
    app = create_app(home, admin_digest(ADMIN_KEY), engine=Engine(home, scrubber=False))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
    )
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"X-API-Key": ADMIN_KEY}, excluded_checks=[positive_data_acceptance])
