"""Timeouts, a client-side rate limit and bounded retries for alpaca-py's REST clients.

alpaca-py's ``RESTClient`` sends every request through ``self._session.request(...)`` (a
``requests.Session``) without a timeout, so a stalled server hangs the job forever, and it
retries only HTTP 429/504 with a fixed 3 s sleep. ``harden_client`` swaps that session for a
``GuardedSession``; nothing else in the client changes. Usable with any alpaca-py REST client
(data, news, trading).

Retries: GET-like (idempotent) requests are retried on 429, 5xx, timeouts and connection
errors. Other methods (order submission) are retried only when the server cannot have acted:
429 (rejected before processing) and connect failures; a read timeout on a POST is raised,
since retrying could submit an order twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

Timeout = float | tuple[float, float]


class DataSourceError(RuntimeError):
    """A remote service kept failing after every allowed retry (not a problem with the input)."""


class TokenBucket:
    """Allows ``rate_per_minute`` calls on average, at most ``burst`` back to back.

    ``acquire()`` blocks (sleeps) until a token is free. Thread-safe; one bucket per process,
    so N processes sharing one account should each get rate / N.
    """

    def __init__(
        self,
        *,
        rate_per_minute: float,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_minute <= 0 or burst < 1:
            raise ValueError(
                f"rate limit needs rate_per_minute > 0 and burst >= 1, got {rate_per_minute}, "
                f"{burst}"
            )
        self._per_s = rate_per_minute / 60.0
        self._burst = float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token; returns the seconds slept waiting for it."""
        with self._lock:  # held while sleeping: waiters queue up in order
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._per_s)
            self._last = now
            waited = 0.0
            if self._tokens < 1.0:
                waited = (1.0 - self._tokens) / self._per_s
                self._sleep(waited)
                # Book the nominal wake-up time: oversleeping then counts as earned tokens.
                self._tokens, self._last = 1.0, now + waited
            self._tokens -= 1.0
            return waited


@dataclass(kw_only=True)
class RetryPolicy:
    """Bounded exponential backoff."""

    max_retries: int = 5  # extra attempts after the first
    backoff_initial_s: float = 1.0  # delay before retry 1; doubles for each further retry
    backoff_max_s: float = 60.0  # cap on one delay (a server's Retry-After included)
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504)

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_initial_s < 0 or self.backoff_max_s < 0:
            raise ValueError("retry max_retries and backoff times must be >= 0")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Delay before retry number ``attempt + 1``; jitter spreads out many clients."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0**attempt)
        jittered = base * rng.uniform(0.5, 1.0)
        if retry_after is not None:
            jittered = max(jittered, retry_after)
        return min(jittered, self.backoff_max_s)


# Failures without a usable answer; ChunkedEncodingError = connection lost mid-body.
_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class GuardedSession(requests.Session):
    """A ``requests.Session`` with a default timeout, rate limit and retries (module doc)."""

    def __init__(
        self,
        *,
        timeout: Timeout,
        limiter: TokenBucket | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        self._timeout = timeout
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any):  # type: ignore[override]
        method = method.decode() if isinstance(method, bytes) else method
        url = url.decode() if isinstance(url, bytes) else url
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        idempotent = method.upper() in _IDEMPOTENT
        where = f"{method.upper()} {urlsplit(url).path}"  # never the headers: they hold the keys
        attempts = self._retry.max_retries + 1
        for attempt in range(attempts):
            if self._limiter is not None:
                self._limiter.acquire()
            retry_after = None
            try:
                resp = super().request(method, url, *args, **kwargs)
            except _NETWORK_ERRORS as exc:
                retryable = idempotent or isinstance(exc, requests.ConnectTimeout)
                if not retryable or attempt + 1 == attempts:
                    raise DataSourceError(
                        f"{where} failed after {attempt + 1} attempt(s): {type(exc).__name__}: "
                        f"{exc}; check the network/service, or raise the timeouts or max_retries"
                    ) from exc
                problem = type(exc).__name__
            else:
                status = resp.status_code
                retryable = status in self._retry.retry_statuses and (idempotent or status == 429)
                if not retryable:
                    return resp
                if attempt + 1 == attempts:
                    raise DataSourceError(
                        f"{where} failed after {attempts} attempt(s): last answer HTTP {status} "
                        f"{resp.text[:200]!r}; the service is rate-limiting or down: try later, "
                        "or lower requests_per_minute / raise max_retries"
                    )
                problem = f"HTTP {status}"
                retry_after = _retry_after_s(resp)
            delay = self._retry.delay(attempt, retry_after, self._rng)
            log.warning(
                "%s: %s; retry %d/%d in %.2fs", where, problem, attempt + 1, attempts - 1, delay
            )
            self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")


def _retry_after_s(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # the HTTP-date form: fall back to our own backoff


def harden_client(
    client: Any,
    *,
    timeout: Timeout,
    limiter: TokenBucket | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Install a ``GuardedSession`` on an alpaca-py REST client (in place); returns the client.

    Relies on alpaca-py's private ``_session`` attribute (checked on alpaca-py 0.44); the
    tests run the real client against a local fake server, so a rename there fails loudly.
    """
    if not isinstance(getattr(client, "_session", None), requests.Session):
        raise TypeError(
            f"{type(client).__name__} has no requests session at ._session; alpaca-py changed "
            "its internals: update deeptrade.data.http_guard.harden_client"
        )
    client._session.close()
    client._session = GuardedSession(timeout=timeout, limiter=limiter, retry=retry, sleep=sleep)
    return client
