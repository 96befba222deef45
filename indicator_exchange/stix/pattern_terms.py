"""STIX patterns as plain data the matcher can compile: an OR of observations, each an AND of comparisons on
one object type, optionally with ``REPEATS n TIMES`` / ``WITHIN s SECONDS``.

That is the whole shape of what we publish and of most indicators partners share. Anything else (observations
joined by AND or FOLLOWEDBY, START/STOP windows) raises ``UnsupportedPattern`` with the reason: the matcher
reports such indicators as skipped instead of guessing.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ANY_INDEX = "*"


class UnsupportedPattern(ValueError):
    """A valid pattern outside what the matcher evaluates per event."""


@dataclass(frozen=True, slots=True)
class Term:
    """``object_type:path op value``; ``path`` holds property names and ``"*"`` for any list index."""

    object_type: str
    path: tuple[str, ...]
    op: str
    value: Any
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    object_type: str
    terms: tuple[Term, ...]
    repeats: int | None = None
    within: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedPattern:
    observations: tuple[Observation, ...]


def unescape(literal: str) -> str:
    """A STIX string literal's content: ``\\'`` is a quote and ``\\\\`` a backslash (STIX 2.1 §9.3)."""
    out: list[str] = []
    chars = iter(literal)
    for char in chars:
        if char == "\\":
            out.append(next(chars, "\\"))
        else:
            out.append(char)
    return "".join(out)


def _constant(node: Any) -> Any:
    kind = type(node).__name__
    if kind == "ListConstant":
        return tuple(_constant(v) for v in node.value)
    if kind == "StringConstant":
        return unescape(str(node.value))
    if kind in ("IntegerConstant", "FloatConstant", "BooleanConstant"):
        return node.value
    if kind in ("HashConstant", "HexConstant", "BinaryConstant", "TimestampConstant"):
        return str(node.value)
    raise UnsupportedPattern(f"constant of type {kind}")


def _term(node: Any) -> Term:
    path: list[str] = []
    for component in node.lhs.property_path:
        path.append(str(component.property_name))
        if type(component).__name__ == "ListObjectPathComponent":
            if component.index != "*":
                raise UnsupportedPattern("list indexes other than [*]")
            path.append(ANY_INDEX)
    return Term(
        object_type=str(node.lhs.object_type_name),
        path=tuple(path),
        op=str(node.operator),
        value=_constant(node.rhs),
        negated=bool(node.negated),
    )


def _conjunctions(node: Any) -> list[list[Term]]:
    """The comparison expression of one observation in disjunctive normal form."""
    kind = type(node).__name__
    if kind == "AndBooleanExpression":
        result: list[list[Term]] = [[]]
        for operand in node.operands:
            result = [left + right for left in result for right in _conjunctions(operand)]
        return result
    if kind == "OrBooleanExpression":
        return [conj for operand in node.operands for conj in _conjunctions(operand)]
    if hasattr(node, "lhs"):
        return [[_term(node)]]
    raise UnsupportedPattern(f"comparison node {kind}")


def _observations(node: Any, repeats: int | None = None, within: int | None = None) -> list[Observation]:
    kind = type(node).__name__
    if kind == "OrObservationExpression":
        return [obs for operand in node.operands for obs in _observations(operand, repeats, within)]
    if kind == "QualifiedObservationExpression":
        qualifier = node.qualifier
        qualifier_kind = type(qualifier).__name__
        if qualifier_kind == "RepeatQualifier":
            repeats = int(qualifier.times_to_repeat.value)
        elif qualifier_kind == "WithinQualifier":
            within = int(qualifier.number_of_seconds.value)
        else:
            raise UnsupportedPattern("START/STOP qualifiers")
        inner = _observations(node.observation_expression, repeats, within)
        if len(inner) != 1 and (repeats or within):
            raise UnsupportedPattern("qualifiers over several observations")
        return inner
    if kind == "ObservationExpression":
        observations = []
        for terms in _conjunctions(node.operand):
            types = {t.object_type for t in terms}
            if len(types) != 1:
                raise UnsupportedPattern("comparisons on different object types in one observation")
            observations.append(
                Observation(object_type=types.pop(), terms=tuple(terms), repeats=repeats, within=within)
            )
        if len(observations) > 1 and (repeats or within):
            raise UnsupportedPattern("qualifiers over an OR inside one observation")
        return observations
    if kind in ("AndObservationExpression", "FollowedByObservationExpression"):
        raise UnsupportedPattern("observations joined by AND or FOLLOWEDBY need several events")
    if kind == "ParentheticalExpression":
        return _observations(node.expression, repeats, within)
    raise UnsupportedPattern(f"observation node {kind}")


@lru_cache(maxsize=65536)
def parse_pattern(pattern: str) -> ParsedPattern:
    """Parse a STIX 2.1 pattern (raises ``UnsupportedPattern``, or ``ValueError`` when it is invalid)."""
    from stix2 import pattern_visitor

    try:
        tree = pattern_visitor.create_pattern_object(pattern, version="2.1")
    except Exception as exc:  # stix2 raises several unrelated types for a bad pattern
        raise ValueError(f"invalid STIX pattern: {exc}") from None
    return ParsedPattern(observations=tuple(_observations(tree)))
