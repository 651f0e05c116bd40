"""Event schema evolution: consumers read the previous version of an event, and refuse a newer one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

from showroom.common.events import Event, PageScraped

V1_PAGE = Path(__file__).parents[1] / "fixtures" / "page_scraped_v1.json"
"""A page.scraped event as the schema-1 code wrote it (before html_key existed)."""


def test_a_stored_v1_page_event_reads_as_v2_with_its_html_key() -> None:
    stored = V1_PAGE.read_text()
    assert json.loads(stored)["schema_version"] == 1 and "html_key" not in json.loads(stored)
    page = PageScraped.model_validate_json(stored)
    assert page.schema_version == PageScraped.SCHEMA_VERSION == 2
    assert page.html_key == page.content_hash  # v1 scrapers archived the HTML under its hash
    assert page.markdown.startswith("# Northwind NS-5") and page.product is not None


def test_new_events_are_written_as_the_current_version() -> None:
    page = PageScraped.model_validate_json(V1_PAGE.read_text())
    again = PageScraped.model_validate_json(page.model_dump_json())
    assert json.loads(page.model_dump_json())["schema_version"] == 2 and again == page


def test_a_newer_version_is_refused_with_the_reason() -> None:
    newer = json.loads(V1_PAGE.read_text()) | {"schema_version": 3}
    with pytest.raises(ValidationError, match="unsupported schema_version 3: this code reads PageScraped up to 2"):
        PageScraped.model_validate(newer)


def test_a_bumped_schema_must_bump_its_default_too() -> None:
    with pytest.raises(TypeError, match="schema_version's default must be SCHEMA_VERSION"):

        class Forgotten(Event):  # defining it is the test
            SCHEMA_VERSION: ClassVar[int] = 2
