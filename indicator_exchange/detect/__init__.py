"""Behavioural fingerprinting: find hydra clusters in API traffic and turn them into detections (issue 18).

Nothing else in the package imports this one; it reads ``match.events`` traffic, fingerprints prompts with
``stix.fingerprint`` for what it publishes, and pushes through ``ingest``. The reasoning behind every signal
and threshold is in ``docs/detect.md``.
"""
