"""The OpenAPI document against the live server: schemathesis generates requests from it (a bounded run)
and every answer must be no 5xx, a documented status, the documented content type and schema."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server.conftest import start_live

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
KEY = {}
EXAMPLES = 25  # per operation: about 400 requests in all


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    live = start_live(tmp_path_factory.mktemp("fuzz"), workers=0)  # tasks stay queued: nothing renders
    KEY["auth"] = f"Bearer {live.alice}"
    yield schemathesis.openapi.from_url(live.url + "/api/openapi.json")
    live.proc.stop()


def test_every_answer_conforms_to_the_document(api_schema):
    """A bounded run (EXAMPLES per operation, derandomized so CI sees the same requests every time)."""
    failures, sent = [], {}
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)  # fmt: skip
        def run(case):
            response = case.call_and_validate(headers={"Authorization": KEY["auth"]}, checks=CHECKS)
            sent[response.status_code // 100] = sent.get(response.status_code // 100, 0) + 1

        try:
            run()
        except Exception as e:  # schemathesis' failure groups and check failures: collect them all
            failures.append(f"{operation.label}: {str(e)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert sent.get(2, 0) >= 50 and sent.get(4, 0) >= 100, sent  # both kinds of answer were exercised


def test_the_document_describes_bodies_auth_and_errors(api_schema):
    raw = api_schema.raw_schema
    create = raw["paths"]["/api/v3/contents/generations/tasks"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(create["requestBody"]["content"])
    assert {"200", "400", "401", "413", "415", "429"} <= set(create["responses"])
    assert (
        create["security"] == [{"bearer": []}]
        and raw["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    )
    assert create["responses"]["429"]["headers"]["Retry-After"]
    assert raw["components"]["schemas"]["Error"]["required"] == ["error"]
    assert raw["paths"]["/api/v1/health"]["get"]["security"] == []
