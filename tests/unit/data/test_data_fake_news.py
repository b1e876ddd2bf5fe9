"""The fake Alpaca News route (tests/fakes/alpaca_data.py), driven by alpaca-py's NewsClient."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest
import requests

from tests.fakes.alpaca_data import add_news_routes, news_item
from tests.fakes.server import FakeServer

KEY, SECRET = "PKNEWS", "news-secret"
T0 = pd.Timestamp("2024-01-02 14:00", tz="UTC")
ITEMS = [
    news_item(
        1000 + i,
        headline=f"headline {i}",
        created_at=T0 + pd.Timedelta(minutes=i),
        symbols=["AAPL"] if i % 3 else ["AAPL", "TSLA"],
        summary=f"summary {i}",
        content=f"<p>body {i}</p>" if i % 5 else "",
    )
    for i in range(120)
]


@pytest.fixture(scope="module")
def server():
    with FakeServer() as srv:
        add_news_routes(srv, ITEMS, api_key=KEY, secret_key=SECRET)
        yield srv


@pytest.fixture(scope="module")
def client(server):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # alpaca.data imports websockets.legacy
        from alpaca.data.historical.news import NewsClient
    return NewsClient(KEY, SECRET, url_override=server.url)


def _request(**kw):
    from alpaca.data.requests import NewsRequest

    return NewsRequest(**kw)


def test_alpaca_client_pages_through_everything_newest_first(server, client):
    before = len(server.log)
    news = client.get_news(_request(symbols="AAPL", start=T0.to_pydatetime())).data["news"]
    assert [n.id for n in news] == [1000 + i for i in reversed(range(120))]
    assert len(server.log) - before == 3  # 50 + 50 + 20
    assert news[0].headline == "headline 119" and news[0].symbols == ["AAPL"]
    assert news[0].created_at == (T0 + pd.Timedelta(minutes=119)).to_pydatetime()
    assert news[0].content == ""  # include_content defaults to false


def test_filters_sort_and_content(client):
    news = client.get_news(
        _request(
            symbols="TSLA",
            start=(T0 + pd.Timedelta(minutes=30)).to_pydatetime(),
            end=(T0 + pd.Timedelta(minutes=60)).to_pydatetime(),  # inclusive
            sort="asc",
            include_content=True,
            exclude_contentless=True,
        )
    ).data["news"]
    expected = [i for i in range(30, 61) if i % 3 == 0 and i % 5]
    assert [n.id - 1000 for n in news] == expected
    assert news[0].content == f"<p>body {expected[0]}</p>"


def test_raw_pagination_and_errors(server):
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    url = f"{server.url}/v1beta1/news"
    seen, token = [], None
    while True:
        params = {"limit": 7, "sort": "asc", **({"page_token": token} if token else {})}
        body = requests.get(url, params=params, headers=headers, timeout=5).json()
        seen += [n["id"] for n in body["news"]]
        token = body["next_page_token"]
        if token is None:
            break
    assert seen == [item["id"] for item in ITEMS]  # every item once, in order
    assert requests.get(url, params={"limit": 51}, headers=headers, timeout=5).status_code == 422
    assert requests.get(url, headers={"APCA-API-KEY-ID": KEY}, timeout=5).status_code == 401
