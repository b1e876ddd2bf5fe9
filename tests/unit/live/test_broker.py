"""The broker adapter against a fake Alpaca on 127.0.0.1, through real alpaca-py clients."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import time
from pathlib import Path

import pytest

from deeptrade.live.broker import (
    AlpacaKeys,
    Broker,
    BrokerConfig,
    BrokerError,
    OrderSpec,
    make_client_order_id,
    make_clients,
)
from tests.fakes.alpaca_trading import FakeAlpaca
from tests.fakes.server import Fault
from tests.unit.live.harness import KEY_ID, NOW, SECRET, broker_config


def _broker(fake: FakeAlpaca, keys: AlpacaKeys, **kw: object) -> Broker:
    cfg = broker_config(fake.url, **kw)
    return Broker(make_clients(cfg, keys, environ={}), cfg)


def _spec(coid: str = "dt-test-1", symbol: str = "AAA", qty: float = 3) -> OrderSpec:
    return OrderSpec(client_order_id=coid, symbol=symbol, side="buy", qty=qty)


def _posts(fake: FakeAlpaca) -> int:
    return sum(1 for r in fake.server.log if r.method == "POST" and r.path == "/v2/orders")


# -- keys --------------------------------------------------------------------------------
def test_keys_from_env_and_masked_repr() -> None:
    keys = AlpacaKeys.from_env({"APCA_API_KEY_ID": KEY_ID, "APCA_API_SECRET_KEY": SECRET})
    assert (keys.key_id, keys.secret_key) == (KEY_ID, SECRET)
    for text in (repr(keys), str(keys), f"{keys}", repr([keys])):
        assert KEY_ID not in text and SECRET not in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(keys)
    with pytest.raises(ValueError, match="APCA_API_KEY_ID"):
        AlpacaKeys.from_env({"APCA_API_KEY_ID": KEY_ID})


def test_keys_file_must_be_0600(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.env"
    path.write_text(
        f"# paper keys\nexport APCA_API_KEY_ID={KEY_ID}\nAPCA_API_SECRET_KEY='{SECRET}'\n"
    )
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match=r"mode 0644.*chmod 600") as err:
        AlpacaKeys.from_file(path)
    assert SECRET not in str(err.value)
    os.chmod(path, 0o600)
    keys = AlpacaKeys.from_file(path)
    assert (keys.key_id, keys.secret_key) == (KEY_ID, SECRET)


def test_keys_file_errors_never_echo_secrets(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"{SECRET}\n")
    os.chmod(path, 0o600)
    with pytest.raises(ValueError, match="expected KEY=VALUE") as err:
        AlpacaKeys.from_file(path)
    assert SECRET not in str(err.value)
    with pytest.raises(ValueError, match="does not exist"):
        AlpacaKeys.from_file(tmp_path / "missing")


# -- modes and ids -------------------------------------------------------------------------
def test_live_mode_needs_confirmation(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    cfg = broker_config(fake.url, mode="live")
    with pytest.raises(ValueError, match="DEEPTRADE_LIVE_CONFIRM=I_UNDERSTAND"):
        make_clients(cfg, keys, environ={})
    with pytest.raises(ValueError, match="DEEPTRADE_LIVE_CONFIRM"):
        make_clients(cfg, keys, environ={"DEEPTRADE_LIVE_CONFIRM": "yes"})
    clients = make_clients(cfg, keys, environ={"DEEPTRADE_LIVE_CONFIRM": "I_UNDERSTAND"})
    assert clients.trading._base_url == fake.url


def test_default_urls_follow_mode(keys: AlpacaKeys) -> None:
    paper = make_clients(BrokerConfig(mode="paper"), keys, environ={})
    assert paper.trading._base_url.value == "https://paper-api.alpaca.markets"
    with pytest.raises(ValueError, match="not one of"):
        BrokerConfig(mode="papr")


def test_client_order_id_is_stable_short_and_distinct() -> None:
    a = make_client_order_id("rel@abc", NOW, "AAA", "buy")
    assert a == make_client_order_id("rel@abc", NOW, "AAA", "buy")
    assert len(a) <= 48
    others = {
        make_client_order_id("rel@abd", NOW, "AAA", "buy"),
        make_client_order_id("rel@abc", NOW + dt.timedelta(minutes=1), "AAA", "buy"),
        make_client_order_id("rel@abc", NOW, "AAB", "buy"),
        make_client_order_id("rel@abc", NOW, "AAA", "sell"),
    }
    assert a not in others and len(others) == 4
    with pytest.raises(ValueError, match="timezone-aware"):
        make_client_order_id("rel", NOW.replace(tzinfo=None), "AAA", "buy")


# -- timeouts and retries ------------------------------------------------------------------
def test_stalled_server_is_cut_by_the_timeout(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys)
    fake.server.fault("GET", "/v2/account", Fault(stall_s=30, times=1))
    t0 = time.monotonic()
    acct = broker.account()  # first attempt times out after 0.5 s, the retry answers
    assert time.monotonic() - t0 < 2.0
    assert acct.status == "ACTIVE"


def test_persistent_500_is_a_clear_error(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys)
    fake.server.fault("GET", "/v2/account", Fault(status=500, times=3))
    with pytest.raises(BrokerError, match=r"GET /account failed after 3 attempts"):
        broker.account()
    assert broker.account().equity > 0  # faults used up: it answers again


def test_alpaca_py_own_retries_are_off(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys, max_attempts=1)
    fake.server.fault("POST", "/v2/orders", Fault(status=504, times=1))
    result = broker.submit(_spec())
    # alpaca-py alone would have re-POSTed after sleeping 3 s; ours looked the order up instead.
    assert _posts(fake) == 1
    assert result.status == "unknown"
    assert fake.accepted == []


# -- idempotent submission -------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=504, after_handler=True),
        Fault(status=500, after_handler=True),
        Fault(drop=True, after_handler=True),
    ],
    ids=["504-after-accept", "500-after-accept", "dropped-after-accept"],
)
def test_ambiguous_submit_is_looked_up_not_resent(
    fake: FakeAlpaca, keys: AlpacaKeys, fault: Fault
) -> None:
    broker = _broker(fake, keys)
    fake.server.fault("POST", "/v2/orders", fault)
    result = broker.submit(_spec())
    assert result.status == "accepted" and result.order is not None
    assert result.order.client_order_id == "dt-test-1"
    assert _posts(fake) == 1
    assert fake.accepted_coids() == ["dt-test-1"]


def test_submit_rejected_before_accept_is_resent_once(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys)
    fake.server.fault("POST", "/v2/orders", Fault(status=503))  # refused, never accepted
    result = broker.submit(_spec())
    assert result.status == "accepted"
    assert _posts(fake) == 2 and fake.accepted_coids() == ["dt-test-1"]


def test_stalled_submit_times_out_then_lookup_then_resend(
    fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    broker = _broker(fake, keys)
    fake.server.fault("POST", "/v2/orders", Fault(stall_s=30))
    t0 = time.monotonic()
    result = broker.submit(_spec())
    assert time.monotonic() - t0 < 3.0
    assert result.status == "accepted"
    assert fake.accepted_coids() == ["dt-test-1"]


def test_duplicate_client_order_id_returns_the_existing_order(
    fake: FakeAlpaca, keys: AlpacaKeys
) -> None:
    broker = _broker(fake, keys)
    first = broker.submit(_spec())
    again = broker.submit(_spec())  # 422 "client_order_id must be unique" -> lookup
    assert again.status == "accepted" and again.order is not None and first.order is not None
    assert again.order.id == first.order.id
    assert fake.accepted_coids() == ["dt-test-1"]


def test_definitive_refusal_is_a_rejection(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys)
    fake.buying_power = 10.0
    result = broker.submit(_spec())
    assert result.status == "rejected" and "insufficient buying power" in result.reason
    fake.halt("BBB")
    assert broker.submit(_spec("dt-test-2", "BBB")).status == "rejected"
    assert fake.accepted == [] and _posts(fake) == 2


def test_dry_run_never_posts_or_deletes(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys, mode="dry_run")
    assert broker.submit(_spec()).status == "dry_run"
    broker.cancel("7b6c1c1e-0000-0000-0000-000000000000")
    broker.cancel_all()
    assert fake.mutating_requests() == []
    assert broker.account().status == "ACTIVE"  # reads still work


def test_cancel_of_a_finished_order_is_not_an_error(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys)
    order = broker.submit(_spec()).order
    assert order is not None and order.status == "filled"
    broker.cancel(order.id)  # 422 from the broker: nothing left to cancel
    assert broker.order(order.id).status == "filled"


def test_reads_parse_into_plain_views(fake: FakeAlpaca, keys: AlpacaKeys) -> None:
    broker = _broker(fake, keys)
    fake.set_position("BBB", -4)
    assert broker.positions()["BBB"].qty == -4
    assert broker.clock().is_open
    assert broker.asset("AAA").tradable
    assert broker.latest_trades(["AAA", "CCC"]) == {"AAA": 100.0, "CCC": 20.0}
    bars = broker.bars(["AAA"], "1Min", NOW - dt.timedelta(minutes=5), NOW)
    assert [b.timestamp for b in bars] == [NOW - dt.timedelta(minutes=k) for k in range(5, -1, -1)]
    assert broker.order_by_client_id("never-sent") is None
