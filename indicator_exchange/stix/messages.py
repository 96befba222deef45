"""How a client's value is quoted in an error message: its ``repr``, cut short, so a 10 MB value does not
make a 10 MB status resource."""

SHOWN = 60  # characters of a client's value quoted in a message


def shown(value: object) -> str:
    """``value`` as quoted in a message: at most ``SHOWN`` characters of its ``repr``."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"
