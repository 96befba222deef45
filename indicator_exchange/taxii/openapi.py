"""OpenAPI answers of the TAXII routes: TAXII error resources, in the TAXII media type."""

from typing import Any

from fastapi.responses import JSONResponse

from indicator_exchange.openapi import COMMON, error_responses
from indicator_exchange.taxii.media import TAXII_MEDIA_TYPE
from indicator_exchange.taxii.resources import TaxiiError


class TaxiiResponse(JSONResponse):
    """Documents a route's answers in the TAXII media type (routes build their own ``Response``); a
    ``JSONResponse`` so that FastAPI documents the response model, not a string."""

    media_type = TAXII_MEDIA_TYPE


def taxii_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Error answers of a TAXII route: TAXII error resources in the TAXII media type."""
    return error_responses((*COMMON, 406, *codes), TAXII_MEDIA_TYPE, TaxiiError)
