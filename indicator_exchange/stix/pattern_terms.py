"""STIX patterns as plain data the matcher can compile: an OR of observations, each an AND of comparisons on
one object type, optionally with ``REPEATS n TIMES`` / ``WITHIN s SECONDS``.

That is the whole shape of what we publish and of most indicators partners share. Anything else (observations
joined by AND or FOLLOWEDBY, START/STOP windows) raises ``UnsupportedPattern`` with the reason: the matcher
reports such indicators as skipped instead of guessing.

Most patterns are the few simple shapes our converter writes (one comparison, an OR of bracketed AND-groups,
an ``IN`` list of LSH bands, ``REPEATS``/``WITHIN``): ``simple_pattern`` reads those with a few regular
expressions, some 30 times faster than the stix2-patterns ANTLR parser (8 µs a pattern against 290 µs), in
which compiling a million indicators otherwise spends five minutes. It takes only a strict subset of the grammar
(spaces between tokens, string and integer literals, ``[*]`` indexes, no ``NOT``, no parentheses), where it
gives exactly what the ANTLR path gives; anything else, errors included, goes to ANTLR.
"""

import re
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
    if "\\" not in literal:
        return literal
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


_STRING = r"'[^'\\]*(?:\\['\\][^'\\]*)*'"  # STIX 2.1 §9.3: the only escapes are \' and \\
_INT = r"-?(?:0|[1-9][0-9]*)"
_LITERAL = f"{_STRING}|{_INT}"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"  # a property name token of the grammar: no hyphen
_COMPARISON = re.compile(
    rf"(?P<type>[A-Za-z_][A-Za-z0-9_-]*):(?P<path>{_NAME}(?:\[\*\])?(?:\.(?:{_NAME}(?:\[\*\])?|{_STRING}))*)"
    rf" +(?P<op>!?=|[<>]=?|IN|LIKE|MATCHES|ISSUBSET|ISSUPERSET) +"
    rf"(?P<value>{_LITERAL}|\( *(?:(?:{_LITERAL})(?: *, *(?:{_LITERAL}))*)? *\))"
)
_PATH_STEP = re.compile(rf"\.?(?:({_NAME})(\[\*\])?|({_STRING}))")
_LIST_ITEM = re.compile(_LITERAL)
_AFTER_COMPARISON = re.compile(r" +(AND|OR) +| *(\])")
_QUALIFIER = re.compile(r" +(?:REPEATS +([1-9][0-9]*) +TIMES|WITHIN +([1-9][0-9]*) +SECONDS)(?![A-Za-z0-9_-])")
_NEXT_OBSERVATION = re.compile(r" +OR +\[ *| *\Z")
_OPEN = re.compile(r" *\[ *")
# Words the lexer reads as keywords, never as names: a pattern using one as a name is left to ANTLR.
_KEYWORDS = frozenset(
    (
        "AND",
        "OR",
        "NOT",
        "FOLLOWEDBY",
        "LIKE",
        "MATCHES",
        "ISSUPERSET",
        "ISSUBSET",
        "EXISTS",
        "LAST",
        "IN",
        "START",
        "STOP",
        "SECONDS",
        "true",
        "false",
        "WITHIN",
        "REPEATS",
        "TIMES",
    )
)
_STRING_OPS = frozenset(("LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"))


def _literal(token: str) -> Any:
    return unescape(token[1:-1]) if token[0] == "'" else int(token)


def _simple_term(match: "re.Match[str]") -> Term | None:
    object_type, op, value = match.group("type", "op", "value")
    if object_type in _KEYWORDS:
        return None
    path: list[str] = []
    for name, index, quoted in _PATH_STEP.findall(match.group("path")):
        if name:
            if name in _KEYWORDS:
                return None
            path.append(name)
            if index:
                path.append(ANY_INDEX)
        else:
            path.append(quoted[1:-1])  # stix2 keeps a quoted property name as written, escapes included
    if value[0] == "(":
        if op != "IN":
            return None
        return Term(object_type, tuple(path), op, tuple(map(_literal, _LIST_ITEM.findall(value))))
    if op == "IN" or (op in _STRING_OPS and value[0] != "'"):
        return None
    if op == "!=":  # stix2 reads ``a != b`` as a negated equality
        return Term(object_type, tuple(path), "=", _literal(value), negated=True)
    return Term(object_type, tuple(path), op, _literal(value))


def simple_pattern(pattern: str) -> ParsedPattern | None:
    """``parse_pattern`` for the simple shapes of the module docstring, or None when the pattern is anything else.

    Where it answers, the answer equals the ANTLR path's (the tests hold it to that over generated patterns).
    """
    opened = _OPEN.match(pattern)
    if opened is None:
        return None
    pos = opened.end()
    observations: list[Observation] = []
    while True:
        conjunctions: list[list[Term]] = [[]]
        while True:
            comparison = _COMPARISON.match(pattern, pos)
            if comparison is None:
                return None
            term = _simple_term(comparison)
            if term is None:
                return None
            conjunctions[-1].append(term)
            joined = _AFTER_COMPARISON.match(pattern, comparison.end())
            if joined is None:
                return None
            pos = joined.end()
            if joined.group(2):
                break
            if joined.group(1) == "OR":
                conjunctions.append([])
        repeats: int | None = None
        within: int | None = None
        while (qualifier := _QUALIFIER.match(pattern, pos)) is not None:
            times, seconds = qualifier.groups()
            if (times and repeats is not None) or (seconds and within is not None):
                return None  # the same qualifier twice: rare, and ANTLR's nesting decides which counts
            if times:
                repeats = int(times)
            else:
                within = int(seconds)
            pos = qualifier.end()
        if len(conjunctions) > 1 and (repeats or within):
            return None
        for terms in conjunctions:
            object_type = terms[0].object_type
            if any(t.object_type != object_type for t in terms):
                return None
            observations.append(Observation(object_type, tuple(terms), repeats, within))
        following = _NEXT_OBSERVATION.match(pattern, pos)
        if following is None:
            return None
        if following.end() == len(pattern):
            return ParsedPattern(observations=tuple(observations))
        pos = following.end()


def antlr_pattern(pattern: str) -> ParsedPattern:
    """``parse_pattern`` through the stix2-patterns ANTLR parser, for any pattern the grammar accepts."""
    from stix2 import pattern_visitor

    try:
        tree = pattern_visitor.create_pattern_object(pattern, version="2.1")
    except Exception as exc:  # stix2 raises several unrelated types for a bad pattern
        raise ValueError(f"invalid STIX pattern: {exc}") from None
    return ParsedPattern(observations=tuple(_observations(tree)))


@lru_cache(maxsize=65536)
def parse_pattern(pattern: str) -> ParsedPattern:
    """Parse a STIX 2.1 pattern (raises ``UnsupportedPattern``, or ``ValueError`` when it is invalid)."""
    parsed = simple_pattern(pattern)
    return parsed if parsed is not None else antlr_pattern(pattern)
