"""The access log keeps the query parameters the audit trail records and redacts every other value."""

import logging

from indicator_exchange.serving import QueryRedactor, log_config


def _logged(path: str) -> str:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )
    assert QueryRedactor().filter(record)
    return record.getMessage()


def test_a_secret_in_the_query_is_redacted() -> None:
    line = _logged("/taxii2/?key=ixk_0123456789abcdef.s3cr3t-s3cr3t&limit=5")
    assert "s3cr3t" not in line
    assert "key=%5Bredacted%5D" in line or "key=[redacted]" in line
    assert "limit=5" in line


def test_recorded_parameters_are_kept() -> None:
    line = _logged("/api1/collections/x/objects/?added_after=2026-01-01T00:00:00Z&match[type]=indicator")
    assert "added_after=2026-01-01T00:00:00Z" in line
    assert "match[type]=indicator" in line


def test_paths_without_a_query_are_untouched() -> None:
    assert '"GET /taxii2/ HTTP/1.1"' in _logged("/taxii2/")


def test_serve_installs_it_on_the_access_handler() -> None:
    config = log_config()
    assert config["handlers"]["access"]["filters"] == ["redact_query"]
    assert config["filters"]["redact_query"]["()"] == "indicator_exchange.serving.QueryRedactor"
