"""Errors that carry their own HTTP status; rendered in one place (``error_handlers``)."""


class ExchangeError(Exception):
    """Base of every error the service reports to a client."""

    status_code: int = 400
    title: str = "Bad request"

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers: dict[str, str] = {}


class BadRequest(ExchangeError):
    status_code = 400
    title = "Bad request"


class Unauthorized(ExchangeError):
    status_code = 401
    title = "Authentication required"


class NotPermitted(ExchangeError):
    status_code = 403
    title = "Not permitted"


class NotFound(ExchangeError):
    status_code = 404
    title = "Not found"


class Hidden(NotFound):
    """A 404 for something that exists but is not the caller's to know of (TAXII 2.1 non-disclosure: a
    collection without a grant, another principal's status). The client gets exactly the not-found answer;
    the audit trail records a denial, and ``reason``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CollectionNotFound(NotFound):
    title = "Collection not found"


class MethodNotAllowed(ExchangeError):
    status_code = 405
    title = "Method not allowed"


class NotAcceptable(ExchangeError):
    status_code = 406
    title = "Not acceptable"


class Conflict(ExchangeError):
    status_code = 409
    title = "Conflict"


class PayloadTooLarge(ExchangeError):
    status_code = 413
    title = "Payload too large"


class UnsupportedMediaType(ExchangeError):
    status_code = 415
    title = "Unsupported media type"


class Unprocessable(ExchangeError):
    status_code = 422
    title = "Unprocessable entity"


class RateLimited(ExchangeError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.headers["Retry-After"] = str(retry_after)


class Unavailable(ExchangeError):
    status_code = 503
    title = "Service unavailable"

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.headers["Retry-After"] = str(retry_after)
