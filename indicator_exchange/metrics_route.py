"""``GET /metrics``: the Prometheus exposition of ``metrics``' counters. Apart from them because the counters are
imported by nearly every module, and this route needs the app's settings (``dependencies``), which import those
modules: together they closed an import loop."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from indicator_exchange.dependencies import SettingsDep
from indicator_exchange.errors import NotFound
from indicator_exchange.metrics import registry
from indicator_exchange.settings import address_in

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request, settings: SettingsDep) -> Response:
    """Prometheus text exposition; 404 to any client outside IX_METRICS_CLIENTS (the endpoint is not advertised)."""
    client = request.client.host if request.client else None
    if not address_in(client, settings.metrics_networks):
        raise NotFound("no such resource")
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
