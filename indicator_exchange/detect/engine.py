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
from indicator_exchange.detect.signals.families import FamilyIndex
from indicator_exchange.detect.signals.infra import InfraIndex
from indicator_exchange.detect.signals.waves import WaveIndex

_BATCH = 4096
_KEY_CACHE = 1 << 18


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
    prompts: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    spans: dict[str, list[float]] = field(default_factory=dict)
    signup_domain: dict[str, str] = field(default_factory=dict)


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
        self._keys: dict[tuple[str | None, int | None], list[str]] = {}
        self._band_rows: npt.NDArray[np.int64] = np.zeros((0, shingles.BANDS), dtype=np.int64)
        self._pending: list[int] = []
        """Rows of ``_band_rows`` (prompts of the current batch and window) not yet filed in a family."""
        self._pending_events: list[Event] = []

    def _open(self, start: float) -> _Window:
        return _Window(
            start=start,
            end=start + self.config.window_seconds,
            families=FamilyIndex(self.config, self._allowlist),
            infra=InfraIndex(self.config),
            waves=WaveIndex(self.config),
        )

    def _flush(self) -> None:
        """File the batch's prompts of the current window in its family index, in order, in one go."""
        window = self._window
        if window is None or not self._pending:
            return
        events = self._pending_events
        window.families.add_batch(
            [e.account for e in events],
            [e.ts for e in events],
            self._band_rows[self._pending],
            [e.prompt or "" for e in events],
        )
        self._since_prune += len(events)
        self._pending, self._pending_events = [], []
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
        data = WindowData(
            start=window.start,
            end=window.end,
            families=window.families.merged(),
            infra=window.infra,
            waves=window.waves,
            prompts=window.prompts,
            requests=window.requests,
            spans=window.spans,
            signup_domain=window.signup_domain,
        )
        self._found += analyse(data, self.config)
        self._window = None

    @staticmethod
    def _state_size(window: _Window) -> int:
        return window.families.size + len(window.infra.by_key) + len(window.infra.by_account) + len(window.spans)

    def feed(self, items: Iterable[Event | LineError]) -> None:
        """Consume events (and report line errors) in batches; may be called more than once."""
        iterator = iter(items)
        while True:
            batch = list(islice(iterator, _BATCH))
            if not batch:
                return
            events: list[Event] = []
            for item in batch:
                if isinstance(item, LineError):
                    self.counts.lines_rejected += 1
                    if self._on_error is not None:
                        self._on_error(item)
                elif self._keep(item):
                    events.append(item)
            texts = [e.prompt for e in events if e.prompt is not None and e.account is not None]
            self._band_rows = shingles.band_key_matrix(texts)
            row = 0
            for event in events:
                if event.prompt is not None and event.account is not None:
                    self._event(event, row)
                    row += 1
                else:
                    self._event(event, -1)
            self._flush()

    def _keep(self, event: Event) -> bool:
        if self._shard is None:
            return True
        index, total = self._shard
        where = event.net or ""
        if zlib.crc32(where.encode()) % total == index:
            return True
        self.counts.other_shard += 1
        return False

    def _event(self, event: Event, row: int) -> None:
        counts = self.counts
        counts.events += 1
        window = self._window
        ts = event.ts
        if window is None:
            window = self._window = self._open(ts)
        elif ts >= window.end:
            self._close()
            start = window.start + (ts - window.start) // self.config.window_seconds * self.config.window_seconds
            window = self._window = self._open(start)
        account = event.account
        if account is None:
            counts.without_account += 1
            return
        bucket = min(self._buckets - 1, max(0, int((ts - window.start) // self.config.bucket_seconds)))
        where = (event.ip, event.asn)
        infra_keys = self._keys.get(where)
        if infra_keys is None:
            infra_keys = []
            if event.ip is not None:
                infra_keys += (f"ip:{event.ip}", f"net:{event.net}")
            if event.asn is not None:
                infra_keys.append(f"asn:{event.asn}")
            if len(self._keys) >= _KEY_CACHE:
                self._keys.clear()
            self._keys[where] = infra_keys
        window.infra.add(account, infra_keys, bucket)
        span = window.spans.get(account)
        if span is None:
            window.spans[account] = [ts, ts]
        else:
            span[0] = min(span[0], ts)
            span[1] = max(span[1], ts)
        if event.signup:
            counts.signups += 1
            wave_keys = [k for k in infra_keys if not k.startswith("ip:")]
            if event.email_domain is not None:
                wave_keys.append(f"domain:{event.email_domain}")
                window.signup_domain[account] = event.email_domain
            window.waves.add(account, ts, wave_keys)
        else:
            counts.requests += 1
            window.requests[account] = window.requests.get(account, 0) + 1
        if row >= 0:
            counts.prompts += 1
            window.prompts[account] = window.prompts.get(account, 0) + 1
            self._pending.append(row)
            self._pending_events.append(event)

    def finish(self) -> list[Cluster]:
        """Close the last window; the clusters of the whole stream, merged across windows."""
        self._close()
        return merge(self._found)
