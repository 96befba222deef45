"""``store.engine.features``: what the store can do is asked of the engine, once, instead of dialect checks at
call sites; the app's services follow it (``services.open_services``)."""

from fastapi.testclient import TestClient

from indicator_exchange.services import services_of
from indicator_exchange.store.engine import StoreFeatures, features
from tests.conftest import engine_for


def test_the_features_follow_the_dialect(db_url: str) -> None:
    found = features(engine_for(db_url))
    on = db_url.startswith("postgresql")
    assert found == StoreFeatures(
        statement_reads=on, one_statement_pages=on, separate_bookkeeping=on, loop_connection=on
    )
    with engine_for(db_url).connect() as connection:
        assert features(connection) is found


def test_the_services_are_built_from_the_features(client: TestClient, db_url: str) -> None:
    app = services_of(client.app)
    assert app.features == features(app.engines.primary)
    assert (app.loop_connection is not None) == app.features.loop_connection
    assert app.read_ahead.enabled == app.features.one_statement_pages
    assert (app.engines.bookkeeping is not app.engines.primary) == app.features.separate_bookkeeping
