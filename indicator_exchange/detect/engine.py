"""One streaming pass over events: windows of ``window_seconds``, each analysed when the stream leaves it.

State lives only for the current window (plus the clusters found so far), so memory follows the traffic of
one window, never the length of the log. Prompts are keyed a batch at a time (``shingles.band_keys`` is
vectorised); everything else is per event. ``shard`` keeps only the events whose /24 (/48) range hashes to
one partition, so a big log can run as N independent processes, each holding a share of the infrastructure.
"""

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import numpy.typing as npt

from indicator_exchange.detect import shingles
from indicator_exchange.detect.clusters import Cluster, WindowData, analyse, merge
from indicator_exchange.detect.config import DetectConfig
from indicator_exchange.detect.reader import Event, LineError
from indicator_exchange.detect.signals import logins
from indicator_exchange.detect.signals.families import FamilyIndex
from indicator_exchange.detect.signals.infra import InfraIndex
from indicator_exchange.detect.signals.waves import WaveIndex

_BATCH = 4096
_IDENTIFIERS_PER_ACCOUNT = 16
"""Hashed identifiers kept per account and window: a member shares a phone or a card, not hundreds."""
Place = tuple[str | None, int | None]
"""(address, ASN) of an event."""


@dataclass(slots=True)
class Counts:
    lines_rejected: int = 0
    events: int = 0
    requests: int = 0
    signups: int = 0
    prompts: int = 0
    without_account: int = 0
    other_shard: int = 0
    windows: int = 0
    peak_state: int = 0


@dataclass(slots=True)
class _Window:
    start: float
    end: float
    families: FamilyIndex
    infra: InfraIndex
    waves: WaveIndex
    signup_domain: dict[str, str] = field(default_factory=dict)
    login_shape: dict[str, str] = field(default_factory=dict)
    identifiers: dict[str, set[str]] = field(default_factory=dict)
    """Account -> its '<type>:<HMAC>' identifiers (never a raw value), at most ``_IDENTIFIERS_PER_ACCOUNT``."""
    places: dict[Place, int] = field(default_factory=dict)
    """(address, ASN) -> row of ``place_keys``: the infrastructure keys of a place, numbered once."""
    place_keys: list[tuple[int, int, int]] = field(default_factory=list)
    place_array: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 3), dtype=np.int64))
    # Per account number (``infra.account_ids``), grown as accounts arrive.
    first: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    last: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    requests: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    prompts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def grow(self, accounts: int) -> None:
        if accounts <= len(self.first):
            return
        size = max(accounts, 2 * len(self.first), 1024)
        more = size - len(self.first)
        self.first = np.concatenate([self.first, np.full(more, np.inf)])
        self.last = np.concatenate([self.last, np.full(more, -np.inf)])
        self.requests = np.concatenate([self.requests, np.zeros(more, dtype=np.int64)])
        self.prompts = np.concatenate([self.prompts, np.zeros(more, dtype=np.int64)])


class Detector:
    def __init__(
        self,
        config: DetectConfig,
        *,
        allowlist: list[str],
        shard: tuple[int, int] | None = None,
        on_error: Callable[[LineError], None] | None = None,
    ) -> None:
        self.config = config
        self.counts = Counts()
        self._allowlist = shingles.band_keys(allowlist)
        self._shard = shard
        self._on_error = on_error
        self._window: _Window | None = None
        self._found: list[Cluster] = []
        self._since_prune = 0
        self._buckets = config.window_seconds // config.bucket_seconds
        # The current batch's events of the current window, as columns (flushed at the batch's end or the
        # window's): account number, place row, time, whether a request, and the prompt rows to file.
        self._band_rows: npt.NDArray[np.int64] = np.zeros((0, shingles.BANDS), dtype=np.int64)
        self._accounts: list[int] = []
        self._places: list[int] = []
        self._stamps: list[float] = []
        self._is_request: list[bool] = []
        self._prompt_rows: list[int] = []
        self._prompt_events: list[Event] = []
        self._prompt_accounts: list[int] = []

    def _open(self, start: float) -> _Window:
        return _Window(
            start=start,
            end=start + self.config.window_seconds,
            families=FamilyIndex(self.config, self._allowlist),
            infra=InfraIndex(self.config),
            waves=WaveIndex(self.config),
        )

    def _flush(self) -> None:
        """File the columns of the current batch and window: counters, infrastructure codes, prompts."""
        window = self._window
        if window is None or not self._accounts:
            return
        accounts = np.array(self._accounts, dtype=np.int64)
        stamps = np.array(self._stamps, dtype=np.float64)
        window.grow(len(window.infra.account_names))
        np.minimum.at(window.first, accounts, stamps)
        np.maximum.at(window.last, accounts, stamps)
        np.add.at(window.requests, accounts, np.array(self._is_request, dtype=np.int64))
        buckets = np.clip((stamps - window.start) // self.config.bucket_seconds, 0, self._buckets - 1).astype(np.int64)
        known = len(window.place_array)
        if len(window.place_keys) > known:  # only the places new in this batch are converted
            new = np.array(window.place_keys[known:], dtype=np.int64).reshape(-1, 3)
            window.place_array = np.concatenate([window.place_array, new])
        window.infra.add_codes(accounts, window.place_array[np.array(self._places, dtype=np.int64)], buckets)
        self._accounts, self._places, self._stamps, self._is_request = [], [], [], []
        events = self._prompt_events
        if not events:
            return
        np.add.at(window.prompts, np.array(self._prompt_accounts, dtype=np.int64), 1)
        self._prompt_accounts = []
        window.families.add_batch(
            [e.account for e in events],
            [e.ts for e in events],
            self._band_rows[self._prompt_rows],
            [e.prompt or "" for e in events],
        )
        self._since_prune += len(events)
        self._prompt_rows, self._prompt_events = [], []
        if self._since_prune >= self.config.prune_every:
            self._since_prune = 0
            self.counts.peak_state = max(self.counts.peak_state, self._state_size(window))
            window.families.prune()

    def _close(self) -> None:
        self._flush()
        window = self._window
        if window is None:
            return
        self.counts.windows += 1
        self.counts.peak_state = max(self.counts.peak_state, self._state_size(window))
        names = window.infra.account_names
        count = len(names)
        prompts = window.prompts[:count].tolist()
        data = WindowData(
            start=window.start,
            end=window.end,
            families=window.families.merged(),
            infra=window.infra,
            waves=window.waves,
            prompts={n: p for n, p in zip(names, prompts, strict=True) if p},
            requests={n: r for n, r in zip(names, window.requests[:count].tolist(), strict=True) if r},
            spans={
                n: [a, b]
                for n, a, b in zip(names, window.first[:count].tolist(), window.last[:count].tolist(), strict=True)
            },
            signup_domain=window.signup_domain,
            login_shape=window.login_shape,
            identifiers=window.identifiers,
        )
        # Merged as they come, not at the end: a campaign seen in every window is one cluster in memory, not one
        # per window (held to the end, they grew the run's memory with the length of the log).
        self._found = merge([*self._found, *analyse(data, self.config)])
        self._window = None

    @staticmethod
    def _state_size(window: _Window) -> int:
        return (
            window.families.size
            + window.infra.size
            + len(window.infra.account_names)
            + len(window.places)
            + len(window.identifiers)
        )

    def feed(self, items: Iterable[Event | LineError]) -> None:
        """Consume events (and report line errors) in batches; may be called more than once."""
        iterator = iter(items)
        while True:
            batch = list(islice(iterator, _BATCH))
            if not batch:
                return
            events = [item for item in batch if type(item) is Event]
            if len(events) < len(batch):
                for item in batch:
                    if isinstance(item, LineError):
                        self.counts.lines_rejected += 1
                        if self._on_error is not None:
                            self._on_error(item)
            if self._shard is not None:
                events = [e for e in events if self._keep(e)]
            texts = [e.prompt for e in events if e.prompt is not None and e.account is not None]
            self._band_rows = shingles.band_key_matrix(texts)
            self._events(events)
            self._flush()

    def _keep(self, event: Event) -> bool:
        assert self._shard is not None
        index, total = self._shard
        where = event.net or ""
        if zlib.crc32(where.encode()) % total == index:
            return True
        self.counts.other_shard += 1
        return False

    def _events(self, events: list[Event]) -> None:
        """The per-event part, kept to appending columns: everything else is done per batch in ``_flush``."""
        counts = self.counts
        window = self._window
        row = 0
        signups = requests = prompts = without = 0
        end = window.end if window is not None else float("-inf")

        # Bound once per batch and again per window: a window has its own tables, ``_close`` starts new columns.
        def bound(window: _Window) -> tuple[Callable[[str], int | None], Callable[[Place], int | None], dict[str, str]]:
            return window.infra.account_ids.get, window.places.get, window.login_shape

        def columns() -> tuple[
            Callable[[int], None], Callable[[int], None], Callable[[float], None], Callable[[bool], None]
        ]:
            return self._accounts.append, self._places.append, self._stamps.append, self._is_request.append

        def prompt_columns() -> tuple[Callable[[int], None], Callable[[Event], None], Callable[[int], None]]:
            return self._prompt_rows.append, self._prompt_events.append, self._prompt_accounts.append

        if window is not None:
            infra, account_id, places_get, login_shape = window.infra, *bound(window)
            add_account, add_place, add_stamp, add_request = columns()
            add_prompt_row, add_prompt, add_prompt_account = prompt_columns()
        for event in events:
            ts = event.ts
            if ts >= end or window is None:
                if window is None:
                    window = self._window = self._open(ts)
                else:
                    self._close()
                    start = (
                        window.start + (ts - window.start) // self.config.window_seconds * self.config.window_seconds
                    )
                    window = self._window = self._open(start)
                end = window.end
                infra, account_id, places_get, login_shape = window.infra, *bound(window)
                add_account, add_place, add_stamp, add_request = columns()
                add_prompt_row, add_prompt, add_prompt_account = prompt_columns()
            account = event.account
            if account is None:
                without += 1
                continue
            aid = account_id(account)
            if aid is None:
                aid = infra.account(account)
            where = (event.ip, event.asn)
            place = places_get(where)
            if place is None:
                place = window.places[where] = len(window.place_keys)
                window.place_keys.append(self._place_keys(infra, event))
            if event.login is not None and account not in login_shape:
                found = logins.shape(event.login)
                if found is not None:
                    login_shape[account] = found
            if event.identifiers:
                held = window.identifiers.setdefault(account, set())
                for identifier in event.identifiers:
                    if len(held) >= _IDENTIFIERS_PER_ACCOUNT:
                        break
                    held.add(identifier)
            add_account(aid)
            add_place(place)
            add_stamp(ts)
            if event.signup:
                signups += 1
                add_request(False)
                names = [infra.key_names[k] for k in window.place_keys[place] if k >= 0]
                wave_keys = [k for k in names if not k.startswith("ip:")]
                if event.email_domain is not None:
                    wave_keys.append(f"domain:{event.email_domain}")
                    window.signup_domain[account] = event.email_domain
                window.waves.add(account, ts, wave_keys)
            else:
                requests += 1
                add_request(True)
            if event.prompt is not None:
                prompts += 1
                add_prompt_row(row)
                add_prompt(event)
                add_prompt_account(aid)
                row += 1
        counts.events += len(events)
        counts.signups += signups
        counts.requests += requests
        counts.prompts += prompts
        counts.without_account += without

    @staticmethod
    def _place_keys(infra: InfraIndex, event: Event) -> tuple[int, int, int]:
        names: list[str] = []
        if event.ip is not None:
            names += (f"ip:{event.ip}", f"net:{event.net}")
        if event.asn is not None:
            names.append(f"asn:{event.asn}")
        ids = [*infra.keys(names), -1, -1, -1]
        return ids[0], ids[1], ids[2]

    def finish(self) -> list[Cluster]:
        """Close the last window; the clusters of the whole stream, merged across windows."""
        self._close()
        return merge(self._found)
