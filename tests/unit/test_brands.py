"""Brand registry rules and the registry file (showroom.common.brands), and the demo's registry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from showroom.cli.stack import DEMO_REGISTRY, PORTAL_BRAND, StackConfig
from showroom.common.brands import RESERVATION_GRACE, Brand, BrandDefinition, RegistryError, load_registry
from showroom.common.crawls import CrawlState
from showroom.common.events import CrawlStatus
from showroom.demo_site import catalog

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def registry(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "brands.toml"
    path.write_text(text)
    return path


def test_variables_are_expanded_and_other_dollars_left_alone(tmp_path: Path) -> None:
    path = registry(tmp_path, '[brands.acme]\nname = "Acme"\nstart_urls = ["${SITE}/"]\ninclude = ["^${SITE}/a$"]\n')
    acme = load_registry(path, {"SITE": "https://acme.example"})["acme"]
    assert [str(u) for u in acme.start_urls] == ["https://acme.example/"]
    assert acme.include == ["^https://acme.example/a$"]
    assert acme.recrawl_interval is None and acme.enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[brands.acme]\nname = "A"\nstart_urls = ["${MISSING}/"]',
            r"brands\.acme\.start_urls: \$\{MISSING\} is not set",
        ),
        ('[brands.Acme_Co]\nname = "A"\nstart_urls = ["https://a.example/"]', r"brands\.Acme_Co: a slug is"),
        ('[brands.acme]\nname = "A"\nstart_urls = ["https://a.example/"]\nmax_pages = 0', r"brands\.acme: max_pages"),
        ('[brands.acme]\nname = "A"\nstart_urls = ["https://a.example/"]\nrecrawl_interval = "PT0S"', "positive"),
        ('[brand.acme]\nname = "A"', r"unknown top-level keys \['brand'\]"),
        ("[brands.acme\n", "brands.toml"),
    ],
)
def test_a_bad_registry_says_where_and_what(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        load_registry(registry(tmp_path, text), {})


def test_intervals_read_iso_durations_and_seconds() -> None:
    base = {"name": "A", "start_urls": ["https://a.example/"]}
    assert BrandDefinition.model_validate({**base, "recrawl_interval": "PT6H"}).recrawl_interval == timedelta(hours=6)
    assert BrandDefinition.model_validate({**base, "recrawl_interval": 90}).recrawl_interval == timedelta(seconds=90)


def brand(**kw: object) -> Brand:
    definition = BrandDefinition.model_validate({"name": "A", "start_urls": ["https://a.example/"], **kw})
    return Brand.define("acme", definition, T0)


def test_a_new_brand_with_an_interval_is_due_at_once_and_then_one_interval_after_each_start() -> None:
    b = brand(recrawl_interval=3600)
    assert b.is_due(T0)
    b.started("c1", "schedule", T0 + timedelta(seconds=5))
    assert not b.is_due(T0 + timedelta(seconds=3604))
    assert b.is_due(T0 + timedelta(seconds=3605))


@pytest.mark.parametrize("kw", [{}, {"recrawl_interval": 60, "enabled": False}])
def test_manual_only_and_disabled_brands_are_never_due(kw: dict[str, object]) -> None:
    b = brand(**kw)
    assert b.state.next_due_at is None and not b.is_due(T0 + timedelta(days=365))


def test_redefining_keeps_the_schedule_state() -> None:
    b = brand(recrawl_interval=3600)
    b.started("c1", "manual", T0)
    again = Brand.define("acme", BrandDefinition(name="A", start_urls=["https://a.example/"], recrawl_interval=60), T0,
                         previous=b)  # fmt: skip
    assert again.state.last_crawl_id == "c1" and again.state.next_due_at == T0 + timedelta(seconds=60)


def test_a_crawl_is_in_progress_until_final_and_a_lost_reservation_expires() -> None:
    b = brand()
    assert not b.crawl_in_progress(None, T0)
    b.started("c1", "manual", T0)
    # Reserved, record not written yet: in progress, until the grace runs out.
    assert b.crawl_in_progress(None, T0 + RESERVATION_GRACE - timedelta(seconds=1))
    assert not b.crawl_in_progress(None, T0 + RESERVATION_GRACE)
    record = CrawlState(crawl_id="c1", brand="acme", spec=b.crawl_spec(), trace_id="t", status=CrawlStatus.RUNNING)
    assert b.crawl_in_progress(record, T0 + timedelta(days=1))
    assert not b.crawl_in_progress(record.model_copy(update={"status": CrawlStatus.CANCELLED}), T0)


def test_the_demo_registry_crawls_every_demo_brand_and_the_portal_within_their_prefixes() -> None:
    config = StackConfig(root=Path("/nonexistent"), api_key="k" * 20, demo_port=8123, scraper_concurrency=3)
    brands = load_registry(DEMO_REGISTRY, config.registry_env())
    assert {slug: b.name for slug, b in brands.items() if slug != PORTAL_BRAND} == {b.slug: b.name for b in catalog()}
    assert all(b.recrawl_interval and b.host_concurrency == 3 for b in brands.values())
    specs = config.demo_crawl_specs()
    assert specs.keys() == brands.keys()
    site = "http://127.0.0.1:8123"
    for slug in {b.slug for b in catalog()}:
        assert specs[slug]["start_urls"] == [f"{site}/{slug}/"]
        admits = [any(re.search(p, url) for p in specs[slug]["include"]) for url in
                  (f"{site}/{slug}/products/x", f"{site}/", f"{site}/other/{slug}/")]  # fmt: skip
        assert admits == [True, False, False]
    assert [re.search(specs[PORTAL_BRAND]["include"][0], u) is not None for u in (f"{site}/", f"{site}/x")] == [
        True,
        False,
    ]
