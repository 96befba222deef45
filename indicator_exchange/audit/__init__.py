"""The audit trail: one append-only row per request that reads or writes objects or changes configuration."""
