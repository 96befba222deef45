"""Indicator lifecycle (issue 17, docs/lifecycle.md): live scores, partner feedback, warninglists."""
