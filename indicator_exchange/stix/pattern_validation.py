"""Whether a STIX pattern (``pattern_type`` ``stix``) is valid, as ``stix2-patterns`` judges it, at a cost an
ingest can carry: the commonest shapes are read by regular expressions that are a strict subset of the grammar
(``pattern_terms.simple_pattern``, held to ``stix2-patterns`` over generated patterns by the tests), the rest
go to the ANTLR parser up to a length bound, and verdicts are cached on the pattern text."""

import re
from functools import lru_cache

from indicator_exchange.stix.messages import shown
from indicator_exchange.stix.pattern_terms import _KEYWORDS, ANY_INDEX, simple_pattern

__all__ = ["MAX_PARSED_PATTERN", "clear_pattern_cache", "pattern_error"]

# --- patterns ----------------------------------------------------------------------------------------------

_HASH_FORMS = {
    "MD5": 32,
    "SHA1": 40,
    "SHA224": 56,
    "SHA256": 64,
    "SHA384": 96,
    "SHA512": 128,
    "SHA3224": 56,
    "SHA3256": 64,
    "SHA3384": 96,
    "SHA3512": 128,
    "RIPEMD160": 40,
    "WHIRLPOOL": 128,
}
_HEX = frozenset("0123456789abcdefABCDEF")


# stix2-patterns' ANTLR parser costs tens of microseconds per character: longer patterns that the regular-
# expression reader does not take are refused rather than parsed (a 10 MB pattern would hold a worker for minutes).
MAX_PARSED_PATTERN = 8192
_CACHED_PATTERN = 1024  # longer patterns are checked every time, so the cache holds at most ~16 MB of text
# The commonest pattern of all, one equality on one property against a plain string: valid by the grammar's
# own token rules (an object type, a property name, a string literal without escapes), read in one match.
_ONE_EQUALITY = re.compile(r"\[([A-Za-z_][A-Za-z0-9_-]*):([A-Za-z_][A-Za-z0-9_]*) !?= '[^'\\]*'\]")


def pattern_error(pattern: str, version: str = "2.1") -> str | None:
    """Why ``pattern`` is not a valid STIX pattern (first error of ``stix2-patterns``), or ``None``; cached on
    the pattern text, as patterns repeat (new versions of an indicator, boundary pages read again by sync)."""
    if len(pattern) <= _CACHED_PATTERN:
        return _cached_pattern_error(pattern, version)
    return _pattern_error(pattern, version)


def clear_pattern_cache() -> None:
    """Forget the verdicts (benchmarks measure patterns never seen)."""
    _cached_pattern_error.cache_clear()


def _pattern_error(pattern: str, version: str) -> str | None:
    """``pattern_error`` without the cache.

    The simple shapes ``simple_pattern`` reads are valid by construction of its expressions (a strict subset of
    the grammar; ``tests/stix/test_validation.py`` holds it to ``stix2-patterns`` over generated patterns):
    for them only the hash literals are checked here, as ``stix2-patterns`` checks them.
    """
    one = _ONE_EQUALITY.fullmatch(pattern) if version == "2.1" else None
    if one is not None and not _KEYWORD_NAMES.intersection(one.groups()):
        return None
    parsed = simple_pattern(pattern) if version == "2.1" else None
    if parsed is not None:
        verdicts = [
            _hash_literal_error(term.path[-1], _literal_text(term.value))
            for observation in parsed.observations
            for term in observation.terms
            if "hashes" in term.path and term.path[-1] != ANY_INDEX
        ]
        if "" not in verdicts:  # else a hash form only stix2-patterns judges
            return next((v for v in verdicts if v), None)
    if len(pattern) > MAX_PARSED_PATTERN:
        return f"longer than the {MAX_PARSED_PATTERN:,} characters this server parses with stix2-patterns"
    from stix2patterns.validator import run_validator  # import on first use: ANTLR tables are large

    try:
        errors = run_validator(pattern, stix_version=version)
    except Exception as exc:  # the parser's listeners crash on some inputs (``[a:b[-1] = '']``): invalid too
        return f"stix2-patterns cannot read it ({type(exc).__name__})"
    return str(errors[0]).removeprefix("FAIL: ") if errors else None


_cached_pattern_error = lru_cache(maxsize=16384)(_pattern_error)
# Words the pattern lexer reads as keywords wherever they stand (pattern_terms._KEYWORDS).
_KEYWORD_NAMES = frozenset(_KEYWORDS)


def _literal_text(value: object) -> str:
    """A literal as stix2-patterns sees it when it checks a hash: strings bare, integers as written, lists as
    their parenthesised text (never a hash)."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) else "(list)"


def _hash_literal_error(selector: str, value: str) -> str | None:
    """As stix2-patterns checks hash literals; ``""`` for the forms left to it (MD6, SSDEEP)."""
    name = selector.upper().replace("-", "").replace("'", "")
    if name in ("MD6", "SSDEEP"):
        return ""
    length = _HASH_FORMS.get(name)
    if length is None or (len(value) == length and set(value) <= _HEX):
        return None
    return f"{shown(value)} is not a valid {selector} hash"
