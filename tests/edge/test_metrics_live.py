"""/metrics on a live `serve --workers 2`: every scrape sums the figures of both workers. `slow`: two workers
starting beside a full parallel test run on 2 cores took longer than a test may wait."""

import re

import httpx
import pytest

from tests.fixtures.live_server import live_server


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_scrape_sums_every_worker(db_url: str) -> None:
    with live_server(db_url, workers=2) as server:
        for _ in range(20):
            with httpx.Client(base_url=server.base, timeout=10) as client:  # a new connection each time
                assert client.get("/taxii2/").status_code == 401
        for _ in range(3):  # whichever worker answers the scrape
            text = httpx.get(f"{server.base}/metrics", timeout=10).text
            found = re.search(r'ix_http_requests_total\{method="GET",route="/taxii2/",status="401"\} (\S+)', text)
            assert found is not None, text[:2000]
            assert float(found[1]) == 20
