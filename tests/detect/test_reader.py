"""Bad input is reported per line (number and reason), never a crash and never a silently dropped line."""

import io
import json

from indicator_exchange.detect.reader import Event, LineError, read_events


def _read(text: bytes, *, max_line_bytes: int = 4096, max_lag: float = 60) -> list[Event | LineError]:
    return list(read_events(io.BytesIO(text), max_line_bytes=max_line_bytes, max_lag_seconds=max_lag))


def _line(**fields: object) -> bytes:
    return json.dumps({"timestamp": "2026-11-30T10:00:00Z"} | fields).encode() + b"\n"


class TestReader:
    def test_a_good_line_is_an_event(self) -> None:
        (event,) = _read(_line(account_id="a1", source_ip="46.91.113.9", email="X@Mail.Example", asn=264500))
        assert isinstance(event, Event)
        assert (event.line, event.ip, event.net, event.asn) == (1, "46.91.113.9", "46.91.113.0/24", 264500)
        assert event.email_domain == "mail.example"
        assert not event.signup

    def test_new_optional_fields_are_accepted(self) -> None:
        fields = {"event_type": "signup", "user_agent": "curl/8", "model": "m", "output_tokens": 3}
        (event,) = _read(_line(**fields))
        assert isinstance(event, Event)
        assert event.signup

    def test_ipv6_range_is_a_48(self) -> None:
        (event,) = _read(_line(source_ip="2a00:1111:abcd:12::1"))
        assert isinstance(event, Event)
        assert event.net == "2a00:1111:abcd::/48"

    def test_every_bad_line_is_reported_with_its_number(self) -> None:
        lines = [
            _line(account_id="ok"),
            b"{not json\n",
            b"[1, 2]\n",
            _line(surprise=1),
            _line(asn="many"),
            json.dumps({"timestamp": "2026-11-30T10:00:00"}).encode() + b"\n",  # no offset
            _line(source_ip="999.1.1.1"),
            json.dumps({"timestamp": "2026-11-30T08:00:00Z"}).encode() + b"\n",  # 2 h back
            b'{"timestamp": "2026-11-30T10:00:00Z", "prompt_text": "' + b"x" * 5000 + b'"}\n',
            b"\n",
            _line(account_id="last"),
        ]
        results = _read(b"".join(lines))
        errors = {r.line: r.reason for r in results if isinstance(r, LineError)}
        assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9]
        assert "not valid JSON" in errors[2]
        assert "unknown field" in errors[4]
        assert "surprise" in errors[4]
        assert errors[5].startswith("asn")
        assert "before the latest seen" in errors[8]
        assert "longer than" in errors[9]
        assert [r.line for r in results if isinstance(r, Event)] == [1, 11]

    def test_reasons_never_echo_the_content(self) -> None:
        secret = "my-secret-prompt-text"
        results = _read(_line(prompt_text=123, email=secret) + b'{"x": "' + secret.encode() + b'"\n')
        assert all(isinstance(r, LineError) and secret not in r.reason for r in results)

    def test_a_late_line_within_the_tolerance_is_kept(self) -> None:
        late = json.dumps({"timestamp": "2026-11-30T09:59:30Z"}).encode() + b"\n"
        assert all(isinstance(r, Event) for r in _read(_line() + late))

    def test_the_fast_decoder_and_the_model_agree(self) -> None:
        # The same event through the fast decoder and, with a field it refuses (an ASN as text, which the model
        # coerces; identifiers, which only the model knows), through the model.
        common = {"account_id": "a1", "source_ip": "46.91.113.9", "email": "x@mail.example", "prompt_text": "hi"}
        fast, coerced, with_ids = _read(
            _line(asn=7, **common)
            + _line(asn="7", **common)
            + _line(asn=7, identifiers={"phone": "+1 555 0100"}, **common)
        )
        assert isinstance(fast, Event)
        assert isinstance(coerced, Event)
        assert isinstance(with_ids, Event)
        assert (fast.line, coerced.line, with_ids.line) == (1, 2, 3)
        for other in (coerced, with_ids):
            other.line = fast.line
            assert other == fast

    def test_bounds_count_characters_as_the_schema_does(self) -> None:
        ok, too_long = _read(_line(model="é" * 256) + _line(model="é" * 257))
        assert isinstance(ok, Event)
        assert isinstance(too_long, LineError)
        assert too_long.reason.startswith("model")

    def test_wrong_types_the_fast_decoder_refuses_are_still_refused(self) -> None:
        lines = [_line(asn=-1), _line(output_tokens=1.5), _line(event_type="login"), _line(prompt_sha256="A" * 64)]
        results = _read(b"".join(lines))
        assert [r.reason.split(":")[0] for r in results if isinstance(r, LineError)] == [
            "asn",
            "output_tokens",
            "event_type",
            "prompt_sha256",
        ]
