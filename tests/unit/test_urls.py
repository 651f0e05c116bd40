import pytest

from showroom.scraper.urls import Scope, normalize_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://Shop.Example.COM:80/a?b=2&a=1#frag", "http://shop.example.com/a?a=1&b=2"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://example.com/p?utm_source=news&id=7&gclid=abc", "https://example.com/p?id=7"),
        ("https://example.com", "https://example.com/"),
    ],
)
def test_spellings_of_one_page_normalise_to_one_url(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize("raw", ["mailto:sales@example.com", "javascript:void(0)", "ftp://example.com/f", "/relative"])
def test_non_http_urls_are_not_crawlable(raw: str) -> None:
    assert normalize_url(raw) is None


def test_scope_admits_subdomains_but_not_lookalikes() -> None:
    scope = Scope(("krk.com",))
    assert scope.allows("https://www.krk.com/monitors")
    assert scope.allows("https://krk.com/")
    assert not scope.allows("https://evilkrk.com/")
    assert not scope.allows("https://krk.com.evil.net/")
    assert not scope.allows("file:///etc/passwd")
    assert scope.allows("data:image/png;base64,AAAA")  # inline resources never leave the browser


@pytest.mark.parametrize(
    "raw", ["http://2130706433/", "http://0x7f.0.0.1/", "http://0177.0.0.1/", "http://127.1/", "http://0x7f000001/"]
)
def test_numeric_hosts_are_read_as_browsers_read_them(raw: str) -> None:
    assert normalize_url(raw) == "http://127.0.0.1/"


def test_names_that_look_a_little_numeric_stay_names() -> None:
    assert normalize_url("http://1password.com/") == "http://1password.com/"
    assert normalize_url("http://256.256.256.256/") == "http://256.256.256.256/"
