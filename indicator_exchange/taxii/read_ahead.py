"""Read-ahead moved to ``store.read_ahead`` (a cache of store pages, built by ``services.open_services``, which
must not import ``taxii``); kept so code written against the old path still imports."""

from indicator_exchange.store.read_ahead import TRIAL, PageRead, PollKey, ReadAhead, poll_key

__all__ = ["TRIAL", "PageRead", "PollKey", "ReadAhead", "poll_key"]
