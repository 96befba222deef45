"""A thin, resilient wrapper over ``taxii2-client`` for pulling and pushing one remote collection.

taxii2-client returns only the JSON of a response; the ``X-TAXII-Date-Added-*`` headers needed for
bookmarks are captured with a ``requests`` response hook on the client's own session.
"""

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from taxii2client.exceptions import TAXIIServiceException
from taxii2client.v21 import Collection

from indicator_exchange.errors import BadRequest

log = logging.getLogger(__name__)
T = TypeVar("T")


class RemoteError(Exception):
    """The remote server failed in a way retries did not fix, or answered nonsense."""


class Interrupted(RemoteError):
    """The stop event was set while waiting to retry."""


@dataclass(frozen=True, slots=True)
class RemotePage:
    objects: list[object]  # as received: entries that are not JSON objects are the caller's to reject
    more: bool
    next_token: str | None
    date_added_first: str | None
    date_added_last: str | None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        # Exponential backoff with full jitter, so many clients do not retry in lockstep.
        return float(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))


def _retryable(exc: Exception) -> bool:
    # ChunkedEncodingError: the connection broke after the headers, in the middle of the body.
    if isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)):
        return True
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return False


def credentials_auth(secret: str | None) -> dict[str, Any]:
    """taxii2-client keyword arguments for a credential: ``user:password`` (Basic) or ``Bearer <token>``."""
    if not secret:
        return {}
    if secret.lower().startswith("bearer "):
        token = secret.split(" ", 1)[1].strip()

        def bearer(request: requests.PreparedRequest) -> requests.PreparedRequest:
            request.headers["Authorization"] = f"Bearer {token}"
            return request

        return {"auth": bearer}
    user, sep, password = secret.partition(":")
    if not sep:
        raise BadRequest("a credential must be 'user:password' or 'Bearer <token>'")
    return {"user": user, "password": password}


class RemoteCollection:
    """One remote TAXII 2.1 collection, with retries on network errors, 5xx and 429."""

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        verify: bool = True,
        stop: threading.Event | None = None,
        prefer_wait: int | None = None,
    ) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._stop = stop
        self._collection = Collection(self.url, verify=verify, **credentials_auth(secret))
        self._last_headers: dict[str, str] = {}
        session: requests.Session = self._collection._conn.session
        session.hooks["response"].append(self._capture)
        if prefer_wait is not None:  # a long poll (RFC 7240): the server may hold an empty answer this long
            session.headers["Prefer"] = f"wait={prefer_wait}"
            timeout = max(timeout, prefer_wait + 30.0)
        original = session.request

        def with_timeout(*args: Any, **kwargs: Any) -> requests.Response:
            kwargs.setdefault("timeout", timeout)
            return original(*args, **kwargs)

        session.request = with_timeout  # type: ignore[method-assign]
        self.requests_made = 0
        self.retries = 0

    def _capture(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.requests_made += 1
        self._last_headers = {k.lower(): v for k, v in response.headers.items()}

    def _call(self, action: Callable[[], T]) -> T:
        for attempt in range(self.retry.attempts):
            try:
                return action()
            except (requests.RequestException, TAXIIServiceException, ValueError) as exc:
                if not _retryable(exc) or attempt == self.retry.attempts - 1:
                    raise RemoteError(f"{self.url}: {exc}") from exc
                self.retries += 1
                delay = self.retry.delay(attempt)
                log.warning("remote %s failed (%s); retry %d in %.2fs", self.url, exc, attempt + 1, delay)
                self._pause(delay)
        raise RemoteError(f"{self.url}: retries exhausted")  # pragma: no cover - loop always returns/raises

    def _pause(self, delay: float) -> None:
        # A backoff can reach minutes: a stop request must not wait for it.
        if self._stop is None:
            self._sleep(delay)
        elif self._stop.wait(delay):
            raise Interrupted(f"{self.url}: stopped while waiting to retry")

    def get_page(self, *, added_after: str | None, next_token: str | None, limit: int) -> RemotePage:
        """One page of ``GET objects/``; ``match[version]=all`` so no version is ever missed."""
        params: dict[str, Any] = {"limit": limit, "version": "all"}
        if next_token:
            params["next"] = next_token
        if added_after:
            params["added_after"] = added_after
        envelope = self._call(lambda: self._collection.get_objects(**params))
        if not isinstance(envelope, dict):
            raise RemoteError(f"{self.url}: the objects response is not a TAXII envelope")
        objects = envelope.get("objects") or []
        if not isinstance(objects, list):
            raise RemoteError(f"{self.url}: 'objects' is not a list")
        token = envelope.get("next")
        return RemotePage(
            objects=list(objects),
            more=bool(envelope.get("more", False)),
            next_token=str(token) if token else None,
            date_added_first=self._last_headers.get("x-taxii-date-added-first"),
            date_added_last=self._last_headers.get("x-taxii-date-added-last"),
        )

    def add_objects(self, objects: list[dict[str, Any]]) -> dict[str, Any]:
        """POST an envelope; returns the status resource (successes, failures)."""
        status = self._call(lambda: self._collection.add_objects({"objects": objects}, wait_for_completion=False))
        return {
            "success_count": int(getattr(status, "success_count", 0) or 0),
            "failure_count": int(getattr(status, "failure_count", 0) or 0),
            "failures": list(getattr(status, "failures", []) or []),
        }
