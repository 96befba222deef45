"""Whatever a client sends, the TAXII endpoints answer with a status below 500 and a TAXII media type.

The default run tries a few dozen inputs per test; `make test-slow` runs the same properties at depth.
"""

import base64
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from tests.fixtures.factories import Key, make_collection, make_key, objects_url

TAXII = "application/taxii+json;version=2.1"
PARAMS = st.dictionaries(
    st.sampled_from(
        ["added_after", "limit", "next", "match[id]", "match[type]", "match[version]", "match[spec_version]", "unknown"]
    ),
    st.one_of(st.text(max_size=40), st.sampled_from(["2026-01-01T00:00:00Z", "1", "all", "first,last", ","])),
    max_size=4,
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)
OBJECTS = st.lists(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(["indicator", "x"]),
                "id": st.text(max_size=50),
                "spec_version": st.sampled_from(["2.1", "2.0"]),
                "modified": st.text(max_size=30),
            }
        ),
    ),
    max_size=5,
)


def setup(session: Session) -> tuple[uuid.UUID, Key]:
    collection = make_collection(session)
    key = make_key(session, "fuzzer", read=[collection], write=[collection])
    session.commit()
    return collection, key


def run_properties(client: TestClient, session: Session, examples: int) -> None:
    collection, key = setup(session)
    url = objects_url(collection)
    base = settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))

    @base
    @given(params=PARAMS)
    def reads(params: dict[str, str]) -> None:
        for path in (url, url.replace("objects", "manifest"), f"{url}indicator--{uuid.uuid4()}/versions/"):
            response = client.get(path, headers=key.basic, params=params)
            assert response.status_code < 500
            assert response.headers["content-type"] == TAXII

    @base
    @given(objects=OBJECTS, wrap=st.booleans())
    def writes(objects: list[Any], wrap: bool) -> None:
        body: Any = {"objects": objects} if wrap else objects
        response = client.post(url, headers=key.post, json=body)
        assert response.status_code in (202, 400, 403)
        assert response.headers["content-type"] == TAXII

    checks: list[Callable[[], None]] = [reads, writes]
    for check in checks:
        check()


def test_no_input_gives_a_server_error(client: TestClient, session: Session) -> None:
    run_properties(client, session, examples=25)


@pytest.mark.slow
def test_no_input_gives_a_server_error_at_depth(client: TestClient, session: Session) -> None:
    run_properties(client, session, examples=600)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "²"},
        {"next": base64.urlsafe_b64encode("ix1:١٢".encode()).decode()},
        {"match[id]": "\x00"},
        {"added_after": "2026\x00"},
        {"\x00": "1"},
    ],
)
def test_inputs_the_fuzzer_once_found(client: TestClient, session: Session, params: dict[str, str]) -> None:
    """Unicode digits that int() refuses, and NUL that PostgreSQL text refuses: 400s, never 500s."""
    collection, key = setup(session)
    url = objects_url(collection)
    for path in (url, f"{url}indicator--{uuid.uuid4()}/versions/", f"{url}indicator--%00/"):
        response = client.get(path, headers=key.basic, params=params)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == TAXII


def test_a_nul_in_a_posted_id_is_a_per_object_failure(client: TestClient, session: Session) -> None:
    collection, key = setup(session)
    body = {"objects": [{"type": "indicator", "id": "indicator--\x00", "spec_version": "2.1", "modified": "\x00"}]}
    response = client.post(objects_url(collection), headers=key.post, json=body)
    assert response.status_code == 202
    assert response.json()["failure_count"] == 1
