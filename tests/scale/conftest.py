"""Shared pieces of the scale tests: a collection with a writer and a reader key, paging helpers, and a
throwaway primary with a streaming replica of it (``pair``, one per test module)."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.orm import Session

from indicator_exchange.store import migrate
from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url
from tests.fixtures.postgres import Cluster, cluster
from tests.fixtures.scale import Replica, database_on


@dataclass(frozen=True)
class Feed:
    collection: uuid.UUID
    writer: Key
    reader: Key

    @property
    def url(self) -> str:
        return objects_url(self.collection)


def make_feed(
    session: Session, name: str = "feed", *, reader_clearance: str = "amber", default_tlp: str = "amber"
) -> Feed:
    """A collection ``name`` (in API root api1), a detector that writes and reads it and a partner that reads."""
    collection = make_collection(session, title=name, default_tlp=default_tlp)
    writer = make_key(session, f"{name}-writer", kind="detector", write=[collection], read=[collection])
    reader = make_key(session, f"{name}-reader", clearance=reader_clearance, read=[collection])
    session.commit()
    return Feed(collection, writer, reader)


def post(client: httpx.Client, feed: Feed, first: int, count: int) -> dict[str, Any]:
    """Post indicators ``first`` .. ``first + count - 1``; the status resource (all must succeed)."""
    objects = envelope(*(make_indicator(n) for n in range(first, first + count)))
    answer = client.post(feed.url, json=objects, headers=feed.writer.post)
    assert answer.status_code == 202, answer.text
    status: dict[str, Any] = answer.json()
    assert status["success_count"] == count, status
    return status


def poll_all(client: httpx.Client, feed: Feed, *, limit: int, key: Key | None = None) -> list[str]:
    """Every object id of the collection, page by page with ``next``."""
    ids: list[str] = []
    params: dict[str, str | int] = {"limit": limit}
    while True:
        answer = client.get(feed.url, params=params, headers=(key or feed.reader).basic)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        ids.extend(o["id"] for o in body.get("objects", []))
        if not body.get("more"):
            return ids
        params = {"limit": limit, "next": body["next"]}


@dataclass
class Pair:
    primary: Cluster
    replica: Replica
    primary_url: str
    replica_url: str


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A throwaway primary with database ``ix`` at head, and a streaming replica of it (``pg_basebackup -R``)."""
    with cluster() as primary:
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE ix")
        primary_url = database_on(primary, "ix")
        migrate.upgrade(primary_url)
        replica = Replica(primary)
        try:
            replica.start()
            yield Pair(primary, replica, primary_url, database_on(replica, "ix"))
        finally:
            replica.remove()
