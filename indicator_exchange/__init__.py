"""indicator-exchange: STIX 2.1 threat-indicator sharing over TAXII 2.1."""

__version__ = "0.1.0"
