"""Fixtures: a fake Alpaca broker on 127.0.0.1 and a LiveEngine wired to it with real parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deeptrade.live.broker import AlpacaKeys
from deeptrade.live.engine import LiveEngine
from tests.fakes.alpaca_trading import FakeAlpaca
from tests.fakes.server import FakeServer
from tests.unit.live.harness import KEY_ID, PRICES, SECRET, build_engine, history


@pytest.fixture
def keys() -> AlpacaKeys:
    return AlpacaKeys(KEY_ID, SECRET)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


@pytest.fixture
def fake(server: FakeServer) -> FakeAlpaca:
    return FakeAlpaca(server, key_id=KEY_ID, secret_key=SECRET, prices=dict(PRICES), bars=history())


@pytest.fixture
def engine(tmp_path: Path, fake: FakeAlpaca, keys: AlpacaKeys) -> Iterator[LiveEngine]:
    eng = build_engine(tmp_path, fake.url, keys)
    yield eng
    eng.journal.close()
