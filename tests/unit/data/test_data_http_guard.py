"""TokenBucket, RetryPolicy and GuardedSession: exact timing with a fake clock, and the
session against a real local server (arrival times measured by the server)."""

from __future__ import annotations

import itertools
import random
import threading
import time

import pytest
import requests

from deeptrade.data.http_guard import (
    DataSourceError,
    GuardedSession,
    RetryPolicy,
    TokenBucket,
    harden_client,
)
from tests.fakes.server import FakeServer, Fault, Response


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_token_bucket_burst_then_steady_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_minute=120, burst=3, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]  # the burst
    assert waits[3:] == pytest.approx([0.5, 0.5, 0.5])  # then 2 per second
    clock.now += 100.0  # a long idle period refills only up to the burst
    assert [bucket.acquire() for _ in range(4)] == pytest.approx([0, 0, 0, 0.5])


def test_token_bucket_counts_oversleep_as_earned():
    clock = FakeClock()
    bucket = TokenBucket(rate_per_minute=60, burst=1, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    clock.now += 0.25
    assert bucket.acquire() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="rate_per_minute > 0"):
        TokenBucket(rate_per_minute=0)


def test_retry_delays_are_exponential_capped_and_honour_retry_after():
    policy = RetryPolicy(backoff_initial_s=1.0, backoff_max_s=10.0)
    rng = random.Random(0)
    for attempt, base in enumerate([1, 2, 4, 8, 10, 10]):
        assert base * 0.5 <= policy.delay(attempt, None, rng) <= base
    assert policy.delay(0, 7.0, rng) == 7.0  # server's Retry-After wins over a shorter backoff
    assert policy.delay(0, 99.0, rng) == 10.0  # but never beyond the cap


@pytest.fixture
def server():
    with FakeServer() as srv:
        yield srv


def test_requests_are_spaced_at_the_server(server):
    arrivals: list[float] = []
    lock = threading.Lock()

    def handler(req):
        with lock:
            arrivals.append(time.monotonic())
        return Response(body={"ok": True})

    server.route("GET", "/ping", handler)
    session = GuardedSession(timeout=2.0, limiter=TokenBucket(rate_per_minute=600))  # 0.1 s
    for _ in range(5):
        assert session.get(f"{server.url}/ping").status_code == 200
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Network jitter moves single arrivals a little (the first request also pays the connect),
    # but no two requests arrive close together and the steady rate holds.
    assert min(gaps) >= 0.05, gaps
    assert arrivals[-1] - arrivals[1] >= 0.3 - 0.02, gaps


def test_retry_after_header_is_used(server):
    calls = []

    def handler(req):
        calls.append(1)
        if len(calls) == 1:
            return Response(status=429, body={"message": "slow down"}, headers={"Retry-After": "3"})
        return Response(body={"ok": True})

    server.route("GET", "/limited", handler)
    slept: list[float] = []
    session = GuardedSession(
        timeout=2.0, retry=RetryPolicy(backoff_initial_s=0.01), sleep=slept.append
    )
    assert session.get(f"{server.url}/limited").json() == {"ok": True}
    assert slept == [3.0]


def test_post_is_not_retried_when_the_server_may_have_acted(server):
    server.route("POST", "/orders", lambda req: Response(body={"id": 1}))
    slept: list[float] = []
    session = GuardedSession(
        timeout=0.3, retry=RetryPolicy(backoff_initial_s=0.01), sleep=slept.append
    )
    server.fault("POST", "/orders", Fault(status=500))
    assert session.post(f"{server.url}/orders", json={}).status_code == 500  # returned, not retried
    server.fault("POST", "/orders", Fault(status=429))  # rejected before processing: retried
    assert session.post(f"{server.url}/orders", json={}).status_code == 200
    server.fault("POST", "/orders", Fault(stall_s=2.0))
    with pytest.raises(
        DataSourceError, match=r"POST /orders failed after 1 attempt\(s\): ReadTimeout"
    ):
        session.post(f"{server.url}/orders", json={})
    assert len([r for r in server.log if r.method == "POST"]) == 4


def test_connection_refused_is_retried_then_raised():
    slept: list[float] = []
    session = GuardedSession(
        timeout=0.5, retry=RetryPolicy(max_retries=2, backoff_initial_s=0.01), sleep=slept.append
    )
    with pytest.raises(
        DataSourceError, match=r"GET /x failed after 3 attempt\(s\): ConnectionError"
    ):
        session.get("http://127.0.0.1:9/x")  # port 9 (discard): nothing listens
    assert len(slept) == 2


def test_harden_client_swaps_the_session():
    class Client:
        def __init__(self) -> None:
            self._session = requests.Session()

    client = harden_client(Client(), timeout=1.0)
    assert isinstance(client._session, GuardedSession)
    with pytest.raises(TypeError, match="alpaca-py changed its internals"):
        harden_client(object(), timeout=1.0)
