"""Which paths are TAXII's: everything but the service's own fixed prefixes (the TAXII routes are
``/{api_root}/...``, so any other first segment names an API root)."""

NON_TAXII_PREFIXES = ("/api/", "/docs", "/redoc", "/openapi.json", "/ui", "/healthz", "/static", "/metrics")


def is_taxii_path(path: str) -> bool:
    """Whether ``path`` is answered by TAXII's rules (its media type, its error resource)."""
    return not path.startswith(NON_TAXII_PREFIXES)
