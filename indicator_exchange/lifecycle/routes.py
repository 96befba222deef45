"""``GET /api/v1/indicators/{id}/lifecycle``: an indicator's live score and what it is made of."""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from indicator_exchange.dependencies import CallerDep, SessionDep, SettingsDep
from indicator_exchange.lifecycle import service
from indicator_exchange.openapi import json_responses

router = APIRouter(prefix="/api/v1", tags=["lifecycle"])


@router.get("/indicators/{indicator_id}/lifecycle", summary="Indicator lifecycle", responses=json_responses(401, 404))
def indicator_lifecycle(
    indicator_id: Annotated[str, Path(max_length=128, pattern=r"^indicator--[0-9a-f-]{36}$")],
    session: SessionDep,
    caller: CallerDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Score, its components, feedback per organisation, warninglist hits, validity and history (docs/lifecycle.md)."""
    return service.view(session, indicator_id=indicator_id, caller=caller, settings=settings)
