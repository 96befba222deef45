"""Disjoint sets over hashable items: path halving and union by size.

Our own rather than ``networkx``/``igraph``: the detector only ever needs connected components of edges it
produces one at a time, and building a graph object first costs memory per edge that union-find never
holds (``bench/bench_detect.py --unionfind`` measures both on the same edges).
"""

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class UnionFind(Generic[T]):
    def __init__(self) -> None:
        self._parent: dict[T, T] = {}
        self._size: dict[T, int] = {}

    def find(self, item: T) -> T:
        parent = self._parent
        if item not in parent:
            parent[item] = item
            self._size[item] = 1
            return item
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(self, a: T, b: T) -> T:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size.pop(rb)
        return ra

    def union_all(self, items: Iterable[T]) -> None:
        first: T | None = None
        for item in items:
            first = self.find(item) if first is None else self.union(first, item)

    def __contains__(self, item: object) -> bool:
        return item in self._parent

    def groups(self) -> Iterator[list[T]]:
        """Every set, as a list of its items (items never unioned form sets of one)."""
        found: dict[T, list[T]] = {}
        for item in self._parent:
            found.setdefault(self.find(item), []).append(item)
        yield from found.values()
