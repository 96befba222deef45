"""Every detector setting is in the README's table, with its default."""

import re

from indicator_exchange.detect.config import DetectConfig
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_every_detector_setting_is_documented_with_its_default() -> None:
    rows = dict(re.findall(r"\| `([a-z_]+)` \(`IX_DETECT_[A-Z_]+`\) \| `([^`]*)` \|", README))
    expected = {name: str(field.default) for name, field in DetectConfig.model_fields.items()}
    assert rows == expected
