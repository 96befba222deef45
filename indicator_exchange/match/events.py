"""API-traffic events to match (``schemas/match-event.schema.json``), the matches found, and the events
refused: one malformed event is reported with its position and reason, and the others are still matched."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from indicator_exchange.ingest.parsing import InputLine
from indicator_exchange.stix.identifiers import identifier_problem

IdentifierType = Literal["email", "email-domain", "phone", "payment-instrument", "device"]
IndicatorKind = Literal["proxy_ip", "prompt_signature", "account_pattern", "other"]
EventType = Literal["request", "signup"]


class TrafficEvent(BaseModel):
    """One request (or signup) seen on our API. Every field but ``timestamp`` is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: AwareDatetime
    event_type: EventType = Field(
        "request", description="'request' (an API call, the default) or 'signup' (an account was created)."
    )
    event_id: str | None = Field(None, max_length=256, description="Your id for the event, echoed in matches.")
    source_ip: str | None = Field(None, description="Client IPv4 or IPv6 address.")
    asn: int | None = Field(None, ge=0, description="Autonomous system of source_ip, if enriched.")
    account_id: str | None = Field(None, max_length=256)
    account_login: str | None = Field(None, max_length=256)
    email: str | None = Field(None, max_length=320)
    prompt_text: str | None = Field(None, repr=False, description="Used in memory to fingerprint; never stored.")
    prompt_sha256: str | None = Field(None, pattern=r"^[a-f0-9]{64}$")
    api_key_id: str | None = Field(None, max_length=256)
    identifiers: dict[IdentifierType, str] | None = Field(
        None, repr=False, description="PII by type; HMAC-hashed in memory with the community key."
    )
    user_agent: str | None = Field(None, max_length=1024, description="Client User-Agent header.")
    model: str | None = Field(None, max_length=256, description="Model the request asked for.")
    output_tokens: int | None = Field(None, ge=0, description="Tokens the answer held.")

    @field_validator("identifiers")
    @classmethod
    def _identifiers(cls, value: dict[IdentifierType, str] | None) -> dict[IdentifierType, str] | None:
        """A phone that does not look like one refuses the event (its line), never hashed as its digits."""
        for kind, given in (value or {}).items():
            problem = identifier_problem(kind, given)
            if problem is not None:
                raise ValueError(problem)
        return value


class Match(BaseModel):
    """One (event, indicator) pair that matched."""

    event_index: int = Field(description="0-based position of the event in the input.")
    event_id: str | None = None
    timestamp: datetime
    indicator_id: str
    kind: IndicatorKind
    campaign_ids: list[str] = Field(default_factory=list)
    matched: str = Field(description="What matched, e.g. 'ipv4-addr:value ISSUBSET 46.112.100.0/24'.")
    verified: bool = Field(True, description="False for a single shared LSH band (a candidate, not a verdict).")
    score: float | None = Field(None, description="The indicator's live lifecycle score, 0-100 (docs/lifecycle.md).")


MAX_FIELD_NAME = 128  # a rejection names the field at fault; an unknown key is the sender's text, so it is cut


class EventRejection(BaseModel):
    """One event that was not matched, and why; the other events of the request are matched all the same."""

    event_index: int = Field(description="0-based position of the event in the input, as in matches.")
    line: int = Field(description="1-based line of the NDJSON input (blank lines counted), or array position + 1.")
    field: str = Field(
        description="The property at fault ('body' when the line is not JSON, 'event' when it is not an object)."
    )
    reason: str = Field(description="Why; never echoes the event's values.")


class SightingsStored(BaseModel):
    sightings: int = Field(description="Sightings written (through the TAXII write path).")
    skipped: int = Field(
        description="Sightings not written: no write grant on the indicator's collection, or refused by the write path."
    )


class MatchResult(BaseModel):
    """The answer to ``POST /api/v1/match`` (and ``indicator-exchange match --json``)."""

    events: int = Field(description="Events matched (the input's events minus the rejected ones).")
    rejected: int = Field(description="Events refused; each is listed in rejections.")
    rejections: list[EventRejection] = Field(description="One entry per refused event, in input order.")
    indicators: int = Field(description="Active indicators the events were matched against.")
    matches: list[Match] = Field(description="One entry per (event, indicator) that matched, in event order.")
    sightings: SightingsStored | None = Field(None, description="Present when sightings=true was asked for.")


@dataclass(slots=True)
class EventBatch:
    """The valid events with their input positions (``event_index`` stays the input's), and the refused ones."""

    events: list[tuple[int, TrafficEvent]] = field(default_factory=list)
    rejections: list[EventRejection] = field(default_factory=list)


def read_events(lines: Sequence[InputLine]) -> EventBatch:
    """Validate each input event on its own: a bad one becomes a rejection, never an error for the request."""
    batch = EventBatch()
    for index, item in enumerate(lines):
        if item.error is not None:
            batch.rejections.append(EventRejection(event_index=index, line=item.line, field="body", reason=item.error))
            continue
        try:
            batch.events.append((index, TrafficEvent.model_validate(item.value)))
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ()))[:MAX_FIELD_NAME] or "event"
            batch.rejections.append(
                EventRejection(event_index=index, line=item.line, field=where, reason=str(first.get("msg", "invalid")))
            )
    return batch
