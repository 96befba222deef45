"""Matching API traffic against the indicators a caller may read: traffic events, the compiled index, the
match route and the sightings it stores. Feed sync (pulling partners) stays in ``sync/``."""
