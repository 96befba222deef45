"""Shared pieces of the scale tests: a collection with a writer and a reader key, and paging helpers."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session

from tests.fixtures.factories import Key, envelope, make_collection, make_indicator, make_key, objects_url


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
