"""The four signals, each measurable on its own (``docs/detect.md`` gives the reasoning of each)."""
