"""The live stream of a collection (``GET /api/v1/collections/{id}/stream``, docs/live.md): Server-Sent Events
read through the keyset path and woken by the worker's hub (``live``)."""
