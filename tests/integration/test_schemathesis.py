"""Property tests of the gateway against its own OpenAPI document, with schemathesis.

The real gateway process (``python -m showroom.gateway``, uvicorn) runs on a nats-server of this
module's own: generated crawl requests and brand edits must never reach the shared server, whose
scrapers would act on them.  No rag-svc, indexer-svc or scraper runs, so their routes answer 503;
that is documented and allowed.  For every operation, bounded and derandomized:

- no 5xx other than the documented 503/504;
- the status code is documented, and the body matches the schema documented for it
  (``ErrorBody`` for errors, FastAPI's validation-error list for 422).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from showroom.cli.stack import free_port
from showroom.common.apikeys import ApiKeyEntry, Scope
from tests.conftest import nats_server

KEY = "sr_schemathesis-admin-key-0123456789"
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
"""Per operation: ~26 operations take ~30 s on two cores.  Set the variable higher to dig deeper."""


@schemathesis.check
def no_undocumented_server_error(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Like schemathesis' ``not_a_server_error``, but 503 and 504 are documented answers: a service
    behind the gateway is down or slow (none runs here).  Whether the route documents them is
    ``status_code_conformance``'s to check."""
    if response.status_code >= 500 and response.status_code not in (503, 504):
        raise AssertionError(f"server error {response.status_code}: {response.text[:500]}")


CHECKS = [
    no_undocumented_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    with nats_server(tmp / "jetstream") as nats_url:
        port = free_port()
        # Unlimited for this key: the rate limit has its own test, and must not shape this one.
        entry = ApiKeyEntry.for_key(KEY, [Scope.ADMIN], name="schemathesis", rate_per_s=1e6, burst=1_000_000)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SHOWROOM_")},
            "SHOWROOM_NATS_URL": nats_url,
            "SHOWROOM_HTTP_PORT": str(port),
            "SHOWROOM_API_KEYS": f"[{entry.config_json()}]",
            "SHOWROOM_ASK_TIMEOUT_S": "1",
            "SHOWROOM_LOG_JSON": "false",
        }
        log = tmp / "gateway.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "showroom.gateway"], env=env, stdout=out, stderr=out)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the gateway did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            # Tracebacks behind any failure are in the gateway's log.
            sys.stderr.write(log.read_text()[-5000:] if "Traceback" in log.read_text() else "")


class _PlainAdapter(requests.adapters.BaseAdapter):
    """Sends through requests' ``HTTPAdapter`` without being one.

    The workspace's urllib3 is urllib3-future (grafana-client pulls it in through niquests), whose
    pool container has no ``keys()``; schemathesis counts a session's pooled connections that way
    for every ``HTTPAdapter`` it finds, and skips adapters of other classes."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = requests.adapters.HTTPAdapter()

    def send(self, *args: Any, **kwargs: Any) -> requests.Response:
        return self.inner.send(*args, **kwargs)

    def close(self) -> None:
        self.inner.close()


def test_every_response_conforms_to_the_documented_api(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    with requests.Session() as session:
        for prefix in ("http://", "https://"):
            session.mount(prefix, _PlainAdapter())
        _exercise_every_operation(schema, session)


def _exercise_every_operation(schema: Any, session: requests.Session) -> None:
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the report names the first failure
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: schemathesis.Case) -> None:
            case.call_and_validate(session=session, headers={"X-API-Key": KEY}, checks=CHECKS, timeout=10)

        try:
            exercise()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group; collect, report all
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:1500]
    assert operations >= 6
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())
