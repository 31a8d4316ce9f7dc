"""Property-based runs of schemathesis over the served OpenAPI schema.

The app is built when the module loads (schemathesis reads the schema at
collection time), on an SQLite file in a temporary folder removed at exit.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from nurture.db.engine import upgrade
from tests.web_support import make_web

_folder = Path(tempfile.mkdtemp(prefix="nurture-schema-"))
atexit.register(shutil.rmtree, _folder, ignore_errors=True)
_url = f"sqlite:///{_folder / 'nurture.db'}"
upgrade(_url)
SERVED = make_web(_url)
atexit.register(SERVED.runtime.close)
atexit.register(SERVED.client.close)
_created = SERVED.api(
    "POST",
    "/api/v1/clients",
    json={
        "email": "ana@example.com",
        "name": "Ana Silva",
        "scar_types": ["atrophic"],
    },
)
assert _created.status_code == 201, _created.text

schema = schemathesis.openapi.from_asgi("/openapi.json", SERVED.client.app)
#: Schema-valid input may still break a clinical rule (an unknown time zone, a hypertrophic-only
#: client without confirmation), so a 422 for it is right: that one check is left out.
BUSINESS_RULES = [positive_data_acceptance]
QUICK = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@QUICK
def test_api_never_fails_or_breaks_its_schema_when_authenticated(case: Any) -> None:
    """With a valid token, no input yields a 5xx or a response outside the schema."""
    case.call_and_validate(
        headers={"Authorization": f"Bearer {SERVED.token}"}, excluded_checks=BUSINESS_RULES
    )


@schema.parametrize()
@QUICK
def test_api_never_fails_or_breaks_its_schema_anonymously(case: Any) -> None:
    """Without a token nothing is served or written: 401 (or 400/422 for an unreadable body)."""
    response = case.call_and_validate(excluded_checks=BUSINESS_RULES)
    if case.method.lower() in case.operation.schema.raw_schema["paths"][case.path]:
        assert response.status_code in (400, 401, 422)
        assert "id" not in response.json()
    else:
        assert response.status_code == 405
