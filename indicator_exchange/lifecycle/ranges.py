"""A sorted-range index over IP ranges: disjoint segments, each naming the lists that cover it.

Every list's ranges are cut into elementary segments at every boundary, so a point lookup is one bisection
and a range lookup (overlap in both directions: the range inside a listed one, or a listed one inside the
range) is a bisection plus the few segments it spans. Sets of list names are interned: the full MISP lists
make a few hundred thousand segments but only a few hundred distinct sets.
"""

import bisect
import ipaddress
import socket
from collections import Counter
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RangeIndex:
    """Ranges of one address family (integers), built once; lookups return the covering lists' names."""

    def __init__(self, ranges: Iterable[tuple[int, int, str]]) -> None:
        events: list[tuple[int, int, str]] = []
        for start, end, name in ranges:
            events.append((start, 1, name))
            events.append((end + 1, -1, name))
        events.sort(key=lambda e: (e[0], e[1]))
        active: Counter[str] = Counter()
        interned: dict[frozenset[str], frozenset[str]] = {}
        self._starts: list[int] = []
        self._names: list[frozenset[str]] = []
        index = 0
        while index < len(events):
            position = events[index][0]
            while index < len(events) and events[index][0] == position:
                _, delta, name = events[index]
                active[name] += delta
                if active[name] == 0:
                    del active[name]
                index += 1
            names = frozenset(active)
            names = interned.setdefault(names, names)
            if self._names and self._names[-1] is names:
                continue
            self._starts.append(position)
            self._names.append(names)

    def __len__(self) -> int:
        return len(self._starts)

    def point(self, value: int) -> frozenset[str]:
        at = bisect.bisect_right(self._starts, value) - 1
        return self._names[at] if at >= 0 else frozenset()

    def overlap(self, start: int, end: int) -> frozenset[str]:
        first = bisect.bisect_right(self._starts, start) - 1
        last = bisect.bisect_right(self._starts, end) - 1
        if first == last:
            return self._names[first] if first >= 0 else frozenset()
        found: set[str] = set()
        for names in self._names[max(first, 0) : last + 1]:
            found |= names
        return frozenset(found)


def bounds(network: IPNetwork) -> tuple[int, int]:
    return int(network.network_address), int(network.broadcast_address)


def parse_bounds(text: str) -> tuple[int, int, int]:
    """``(version, first, last)`` of an address or CIDR (host bits ignored); ``ValueError`` when it is neither.

    ``socket.inet_pton`` instead of ``ipaddress``: the MISP lists hold ~120,000 ranges, parsed at every start.
    """
    address, _, prefix = text.strip().partition("/")
    version, bits = (6, 128) if ":" in address else (4, 32)
    try:
        packed = socket.inet_pton(socket.AF_INET6 if version == 6 else socket.AF_INET, address)
    except OSError:
        raise ValueError(f"{text!r} is not an IP address or range") from None
    length = bits if not prefix else int(prefix) if prefix.isdigit() else -1
    if not 0 <= length <= bits:
        raise ValueError(f"{text!r} has no valid prefix length")
    host = (1 << (bits - length)) - 1
    first = int.from_bytes(packed, "big") & ~host
    return version, first, first | host
