"""HTML bodies for the crawler lab (``/lab/...``); the scenarios are described in :mod:`showroom.demo_site.lab`.

Lab pages use their own minimal layout with no site or brand navigation, so
a crawl that starts inside one scenario reaches only that scenario's pages.
The buying-guide articles of the static section are generated here from
templates, deterministically (same text in every process).
"""

from __future__ import annotations

import calendar as _calendar
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from html import escape
from typing import Any

_CALENDAR = _calendar.Calendar(firstweekday=0)


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def layout(title: str, main: str, *, head_extra: str = "", main_attrs: str = "", body_end: str = "") -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<link rel="stylesheet" href="/static/site.css">
{head_extra}</head>
<body>
<header class="site-header"><span class="logo">Showroom Lab</span></header>
<main{main_attrs}>
{main}
</main>
<footer class="site-footer"><p>Crawler test scenarios. Fictional content for demonstration.</p></footer>
{body_end}</body>
</html>
"""


def simple(title: str, *paragraphs: str, links: tuple[tuple[str, str], ...] = ()) -> str:
    """A plain lab page: heading, paragraphs (already HTML-escaped by the caller or plain text), links."""
    body = "".join(f"<p>{_e(p)}</p>\n" for p in paragraphs)
    if links:
        body += "<ul>" + "".join(f'<li><a href="{_e(href)}">{_e(text)}</a></li>' for href, text in links) + "</ul>\n"
    return layout(f"{title} | Showroom Lab", f"<h1>{_e(title)}</h1>\n{body}")


# -- buying-guide articles -------------------------------------------------------


@dataclass(frozen=True)
class _Topic:
    plural: str
    features: tuple[str, ...]
    low: int
    high: int
    setup: str
    mistake: str


_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        "studio monitors",
        ("woofer size", "low-frequency extension", "room correction controls", "amplifier power"),
        249,
        1899,
        "place the tweeters at ear height and form an equilateral triangle with your listening position",
        "pushing the speakers against the wall and then blaming the bass",
    ),
    _Topic(
        "audio interfaces",
        ("preamp noise", "round-trip latency", "input count", "driver stability"),
        129,
        1499,
        "install the driver before connecting the interface and set the buffer to 128 samples to start",
        "buying more inputs than you will ever record at once",
    ),
    _Topic(
        "studio headphones",
        ("closed or open back", "clamping force", "impedance", "cable length"),
        99,
        699,
        "give the pads a few days to settle before judging comfort",
        "mixing entirely on closed-back headphones without checking on speakers",
    ),
    _Topic(
        "condenser microphones",
        ("self-noise", "polar pattern", "maximum SPL", "phantom power needs"),
        149,
        1299,
        "use a pop filter and start about 20 centimetres from the source",
        "recording in an untreated room and expecting a sensitive capsule to hide it",
    ),
    _Topic(
        "dynamic microphones",
        ("output level", "off-axis rejection", "handling noise", "proximity effect"),
        99,
        499,
        "pair it with a clean, high-gain preamp or an inline booster",
        "underestimating how much gain a low-output dynamic needs",
    ),
    _Topic(
        "synthesizers",
        ("polyphony", "oscillator design", "modulation matrix", "preset storage"),
        399,
        2499,
        "save an init patch first and build a few sounds from scratch",
        "judging an instrument by its factory presets alone",
    ),
    _Topic(
        "drum machines",
        ("sound engine", "pattern length", "individual outputs", "swing and timing"),
        249,
        1499,
        "sync it to your DAW over MIDI clock before programming long patterns",
        "ignoring how the sequencer feels in favour of the sound list",
    ),
    _Topic(
        "MIDI controllers",
        ("key action", "pad sensitivity", "DAW integration", "number of assignable knobs"),
        99,
        899,
        "map the controls you use most to the same place in every project",
        "buying 88 keys for a desk that only fits 49",
    ),
    _Topic(
        "mixers",
        ("channel count", "onboard effects", "USB multitrack recording", "aux sends"),
        199,
        2499,
        "label every channel strip and set gain before touching the faders",
        "running every channel hot and wondering where the headroom went",
    ),
    _Topic(
        "guitar amplifiers",
        ("wattage", "speaker size", "headphone output", "effects loop"),
        149,
        1999,
        "start with every tone control at noon and adjust one at a time",
        "buying a 100-watt head for a flat with thin walls",
    ),
    _Topic(
        "effects pedals",
        ("true bypass or buffered", "power requirements", "preset recall", "stereo outputs"),
        79,
        599,
        "power the board from an isolated supply to avoid hum",
        "chaining pedals in a random order and chasing noise for an evening",
    ),
    _Topic(
        "acoustic treatment panels",
        ("panel thickness", "absorption coefficient", "fire rating", "mounting options"),
        149,
        999,
        "treat the first reflection points on the side walls before anything else",
        "covering every wall in thin foam that only tames the high frequencies",
    ),
    _Topic(
        "monitor controllers",
        ("volume knob quality", "speaker switching", "talkback", "headphone amplifiers"),
        149,
        899,
        "calibrate your listening level with a meter and mark it on the dial",
        "adding a controller that colours the signal you were trying to judge",
    ),
    _Topic(
        "samplers",
        ("sample memory", "time-stretching quality", "pad layout", "import formats"),
        299,
        1999,
        "organise samples into folders before loading them onto the device",
        "filling the memory with loops you will never use",
    ),
    _Topic(
        "PA speakers",
        ("maximum SPL", "coverage angle", "weight", "built-in mixer"),
        299,
        2299,
        "raise the speakers on stands so the horns clear the front rows",
        "pointing the mains at the microphones and fighting feedback all night",
    ),
    _Topic(
        "in-ear monitors",
        ("driver count", "isolation", "fit and tips", "cable type"),
        99,
        1499,
        "try every tip size; the seal matters more than the driver count",
        "turning the mix up to compensate for a poor seal",
    ),
    _Topic(
        "keyboard stands",
        ("load rating", "height range", "tier options", "footprint"),
        49,
        299,
        "set the height so your forearms are level with the keys",
        "trusting a wobbly X-stand with an expensive workstation",
    ),
    _Topic(
        "DI boxes",
        ("active or passive design", "ground lift", "pad switch", "input impedance"),
        49,
        399,
        "use the ground lift only when you actually hear hum",
        "plugging a line-level source into an instrument input without a pad",
    ),
    _Topic(
        "turntables",
        ("drive type", "tonearm adjustability", "built-in preamp", "speed stability"),
        149,
        1299,
        "set the tracking force with a gauge, not by eye",
        "skipping the cartridge alignment because the deck came pre-assembled",
    ),
    _Topic(
        "cables and connectors",
        ("shielding", "connector quality", "cable length", "balanced or unbalanced"),
        19,
        199,
        "coil cables over-under so they lie flat and last longer",
        "spending more on cables than on the room they are used in",
    ),
)

_ANGLES: tuple[tuple[str, str], ...] = (
    ("for a small room", "In a small room, reflections arrive early and bass builds up in the corners"),
    ("on a budget", "On a tight budget, every feature has to earn its place"),
    ("for beginners", "If you are just starting out, simplicity beats an impressive feature list"),
    ("for live performance", "On stage, reliability and quick access matter more than fine detail"),
    ("for podcasting", "For spoken word, clarity and low noise come first"),
    ("for home recording", "At home, you are often engineer, performer and producer at once"),
    ("for touring", "On tour, gear gets loaded, unloaded and dropped every night"),
    ("for electronic music", "In electronic music, integration with the rest of the setup is everything"),
    ("for film scoring", "When scoring to picture, long sessions and precise monitoring are the norm"),
    ("for a school music room", "In a school, durability and ease of use outweigh boutique features"),
)

_TITLES = (
    "How to choose {plural} {angle}",
    "Buying guide: {plural} {angle}",
    "What to look for in {plural} {angle}",
    "{Plural} {angle}: a practical checklist",
)

_AUTHORS = ("Ada Brennan", "Tomás Reyes", "Mei Nakamura", "Jonah Fielding", "Priya Sethi", "Lars Ekdahl")

_INTRO = (
    "{situation}, so choosing {plural} deserves more care than a quick look at a spec sheet.",
    "{situation}. This guide walks through what actually matters when you shop for {plural}.",
    "{situation}. We have tested dozens of {plural} and the same few questions decide every purchase.",
)
_FEATURE = (
    "Pay close attention to {feature}: it shapes day-to-day use far more than the marketing suggests.",
    "{Feature} is where cheaper and dearer models differ most, and it is worth hearing the difference yourself.",
    "Check {feature} before anything else; a mismatch here is hard to fix later.",
    "Do not overlook {feature}. Reviews often skip it, but owners mention it constantly.",
)
_BUDGET = (
    "Expect to pay between ${low:,} and ${high:,}. Around ${mid:,} you get most of the quality "
    "without paying for features you will not use.",
    "Prices run from about ${low:,} to ${high:,}. The sweet spot sits near ${mid:,}, where build "
    "quality improves noticeably.",
    "Entry models start near ${low:,}; flagship units reach ${high:,}. Spending roughly ${mid:,} "
    "buys a product you will not outgrow in a year.",
)
_SETUP = (
    "Once it arrives, {setup}.",
    "The best first step after unboxing: {setup}.",
    "Before your first session, {setup}.",
)
_MISTAKE = (
    "The most common mistake we see is {mistake}.",
    "Avoid {mistake}; it is the complaint we hear most often.",
    "Many buyers regret {mistake}.",
)
_CLOSING = (
    "Whatever you choose, buy from a dealer with a generous return policy and give yourself time to learn the gear.",
    "Try before you buy where you can, and keep the packaging until you are sure.",
    "Good gear lasts for years, so it pays to spend an extra evening on research.",
)


@dataclass(frozen=True)
class LabArticle:
    """One buying guide of the lab's static section (and of its JavaScript twin)."""

    number: int
    title: str
    author: str
    updated: date
    summary: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]
    """(heading, paragraphs) in page order."""
    checklist: tuple[str, ...]

    @property
    def static_path(self) -> str:
        return f"/lab/static/articles/{self.number}"

    @property
    def js_path(self) -> str:
        return f"/lab/js/articles/{self.number}"

    @property
    def api_path(self) -> str:
        return f"/lab/js/api/articles/{self.number}.json"

    @property
    def last_modified(self) -> datetime:
        return datetime(self.updated.year, self.updated.month, self.updated.day, 9, 0, tzinfo=UTC)

    def text_blocks(self) -> list[str]:
        """The article's visible text in order (title, byline, summary, headings, paragraphs, checklist)."""
        blocks = [self.title, self.byline, self.summary]
        for heading, paragraphs in self.sections:
            blocks.append(heading)
            blocks.extend(paragraphs)
        blocks.append("Checklist")
        blocks.extend(self.checklist)
        return blocks

    @property
    def byline(self) -> str:
        return f"By {self.author} · Updated {self.updated.isoformat()}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _feature_sentence(rng: random.Random, feature: str) -> str:
    return rng.choice(_FEATURE).format(feature=feature, Feature=_cap(feature))


@cache
def lab_article(number: int) -> LabArticle:
    """The buying guide numbered ``number`` (1-based); any positive number works, content repeats its topics."""
    if number < 1:
        raise ValueError("article numbers start at 1")
    k = number - 1
    topic = _TOPICS[k % len(_TOPICS)]
    angle, situation = _ANGLES[(k // len(_TOPICS)) % len(_ANGLES)]
    edition = k // (len(_TOPICS) * len(_ANGLES))
    rng = random.Random(f"showroom-lab-article-{number}")
    fill = {"plural": topic.plural, "Plural": _cap(topic.plural), "angle": angle, "situation": situation}
    title = rng.choice(_TITLES).format(**fill)
    if edition:  # past 200 articles the topics come round again
        title += f" (edition {edition + 1})"
    features = list(topic.features)
    rng.shuffle(features)
    feature_paras = tuple(
        f"{_feature_sentence(rng, f)} {_feature_sentence(rng, g)}"
        for f, g in zip(features[::2], features[1::2], strict=True)
    )
    scale = 1 + (number % 7) / 20
    low, high = round(topic.low * scale), round(topic.high * scale)
    mid = round((low + high) / 2, -1)
    sections = (
        ("Why it matters", (rng.choice(_INTRO).format(**fill),)),
        ("What to look for", feature_paras),
        ("How much to spend", (rng.choice(_BUDGET).format(low=low, high=high, mid=int(mid)),)),
        ("Setting up", (rng.choice(_SETUP).format(setup=topic.setup),)),
        ("Common mistakes", (rng.choice(_MISTAKE).format(mistake=topic.mistake), rng.choice(_CLOSING))),
    )
    checklist = (
        *(f"Compare {f} across your shortlist" for f in features[:3]),
        f"Set a ceiling of ${high:,} and stick to it",
    )
    return LabArticle(
        number=number,
        title=title,
        author=_AUTHORS[k % len(_AUTHORS)],
        updated=date(2023, 1, 2) + timedelta(days=(number * 37) % 480),
        summary=f"Everything to weigh when buying {topic.plural} {angle}, from {features[0]} to price.",
        sections=sections,
        checklist=checklist,
    )


def article_links(number: int, total: int, *, js: bool) -> list[dict[str, str]]:
    """The index link and the previous/next neighbours an article page shows."""
    prefix = "/lab/js" if js else "/lab/static"
    links = [{"rel": "index", "name": "All buying guides", "url": f"{prefix}/"}]
    if number > 1:
        links.append({"rel": "prev", "name": lab_article(number - 1).title, "url": f"{prefix}/articles/{number - 1}"})
    if number < total:
        links.append({"rel": "next", "name": lab_article(number + 1).title, "url": f"{prefix}/articles/{number + 1}"})
    return links


def _article_main(a: LabArticle, links: list[dict[str, str]]) -> str:
    sections = "".join(
        f"<section><h2>{_e(heading)}</h2>" + "".join(f"<p>{_e(p)}</p>" for p in paragraphs) + "</section>\n"
        for heading, paragraphs in a.sections
    )
    checklist = "".join(f"<li>{_e(item)}</li>" for item in a.checklist)
    crumb = next(link for link in links if link["rel"] == "index")
    pager = " ".join(
        f'<a rel="{link["rel"]}" href="{_e(link["url"])}">{_e(link["name"])}</a>' for link in links if link is not crumb
    )
    home = f'<a href="{_e(crumb["url"])}">{_e(crumb["name"])}</a>'
    return f"""<nav class="breadcrumb" aria-label="Breadcrumb">{home}</nav>
<article class="guide">
<h1>{_e(a.title)}</h1>
<p class="byline">{_e(a.byline)}</p>
<p class="summary">{_e(a.summary)}</p>
{sections}<h2>Checklist</h2>
<ul class="checklist">{checklist}</ul>
</article>
<nav class="pager" aria-label="Articles">{pager}</nav>"""


def static_article(number: int, total: int) -> str:
    a = lab_article(number)
    return layout(f"{a.title} | Showroom Lab", _article_main(a, article_links(number, total, js=False)))


def article_data(number: int, total: int) -> dict[str, Any]:
    """The JSON the JavaScript twin's script fetches: the same content and links as the static page."""
    a = lab_article(number)
    return {
        "number": a.number,
        "title": a.title,
        "author": a.author,
        "updated": a.updated.isoformat(),
        "byline": a.byline,
        "summary": a.summary,
        "sections": [{"heading": h, "paragraphs": list(ps)} for h, ps in a.sections],
        "checklist": list(a.checklist),
        "links": article_links(number, total, js=True),
    }


def js_article_shell(number: int) -> str:
    noscript = "<noscript><p>Please enable JavaScript to read this guide.</p></noscript>"
    return layout(
        "Loading… | Showroom Lab",
        "",
        head_extra='<script src="/static/lab.js" defer></script>\n',
        main_attrs=f' id="article-app" data-api="/lab/js/api/articles/{number}.json" data-state="loading"',
        body_end=noscript + "\n",
    )


def article_index(total: int, *, js: bool) -> str:
    prefix = "/lab/js" if js else "/lab/static"
    kind = "rendered in the browser by JavaScript" if js else "plain server-rendered HTML"
    items = "".join(
        f'<li><a href="{prefix}/articles/{n}">{_e(lab_article(n).title)}</a></li>' for n in range(1, total + 1)
    )
    main = f"""<h1>Buying guides</h1>
<p>{total} guides to choosing music gear, {kind}.</p>
<ol class="articles">{items}</ol>"""
    return layout(f"Buying guides ({'JavaScript' if js else 'static'}) | Showroom Lab", main)


# -- calendar trap ----------------------------------------------------------------


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    total = year * 12 + (month - 1) + delta
    return total // 12, total % 12 + 1


def calendar_month(year: int, month: int) -> str:
    prev_y, prev_m = _shift_month(year, month, -1)
    next_y, next_m = _shift_month(year, month, 1)
    nav = []
    if prev_y >= 1:
        nav.append(f'<a rel="prev" href="?month={month_key(prev_y, prev_m)}">Previous month</a>')
    if next_y <= 9999:
        nav.append(f'<a rel="next" href="?month={month_key(next_y, next_m)}">Next month</a>')
    weeks = []
    for week in _CALENDAR.monthdayscalendar(year, month):
        cells = "".join(
            "<td></td>" if d == 0 else f'<td><a href="?month={month_key(year, month)}&amp;day={d}">{d}</a></td>'
            for d in week
        )
        weeks.append(f"<tr>{cells}</tr>")
    head = "".join(f"<th>{name}</th>" for name in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    title = f"{_calendar.month_name[month]} {year:04d}"
    main = f"""<h1>Events: {title}</h1>
<p>No events scheduled this month.</p>
<table class="calendar"><tr>{head}</tr>{"".join(weeks)}</table>
<nav class="pager" aria-label="Months">{" ".join(nav)}</nav>"""
    return layout(f"{title} | Events | Showroom Lab", main)


def calendar_day(year: int, month: int, day: int) -> str:
    current = date(year, month, day)
    links = [f'<a href="?month={month_key(year, month)}">Back to {_calendar.month_name[month]} {year:04d}</a>']
    for rel, delta in (("prev", -1), ("next", 1)):
        try:
            other = current + timedelta(days=delta)
        except OverflowError:  # before 0001-01-01 or after 9999-12-31
            continue
        links.append(
            f'<a rel="{rel}" href="?month={month_key(other.year, other.month)}&amp;day={other.day}">'
            f"{other.isoformat()}</a>"
        )
    title = f"{current.strftime('%A')} {day} {_calendar.month_name[month]} {year:04d}"
    main = f"<h1>{title}</h1>\n<p>No events on this day.</p>\n<nav>{' '.join(links)}</nav>"
    return layout(f"{title} | Events | Showroom Lab", main)
