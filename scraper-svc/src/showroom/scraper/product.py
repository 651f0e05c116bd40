"""Product data from one page: structured data first, visible-text heuristics last.

Sources, highest priority first; a field is filled from a lower source only
when no higher source has it:

1. JSON-LD (parsed here, block by block, so one broken block loses only itself;
   HTML/JS comments, CDATA wrappers and trailing commas are tolerated;
   ``@graph`` and ``@id`` references are followed),
2. microdata (``extruct``),
3. RDFa (``extruct``, schema.org vocabulary only),
4. OpenGraph product tags (``og:*``/``product:*``; only on pages whose
   ``og:type`` is a product or that carry ``product:price:*``),
5. heuristics on the visible main content: the ``<h1>`` as name, the first
   price near the top of the main content (``price-parser``), availability
   phrases in several languages, ``Label: value`` texts and spec rows for
   SKU/MPN/GTIN/brand, the meta description and ``og:image``.

Price and currency travel together: the currency comes from the source that
gave the price when that source names one.  ``specs`` is the union of the
structured ``additionalProperty`` values and the page's own spec tables; on a
key present in both the structured value wins.

Which product: within one source, the page's own product is the only one there
is, or the one whose ``url`` is the page URL, or whose name matches the page's
``<h1>``; several different products and none of these is a listing (no
product).  A lower structured source whose product has another SKU or name than
the top one's fills nothing (a widget about some other product).  A page is a
product page when a structured source describes a product, when its OpenGraph
tags do, or (no structured product at all) when it has an ``<h1>``, a visible
price and a buy button or an availability phrase.

Visible-text availability phrases map to the nearest schema.org name: "sold
out"/"ausverkauft"/"épuisé"/"agotado"/"esaurito"/"売り切れ" to ``SoldOut``;
"out of stock"/"nicht verfügbar"/"rupture de stock"/"在庫切れ" to ``OutOfStock``.

**Several offers.**  All offers of the product are pooled (a ``ProductGroup``'s
variants' offers included, an ``AggregateOffer``'s nested ``offers`` expanded,
``priceSpecification`` read when an offer has no ``price``).  Then:

1. if the page URL is one offer's or variant's own URL (``?variant=…``), only
   those offers count;
2. only offers with a price count (when any has one);
3. new-condition offers (no ``itemCondition``, or not a used/refurbished/
   damaged one) win over the others when there are any;
4. only offers in the page's main currency count: the OpenGraph
   ``product:price:currency`` when an offer uses it, else the currency of the
   first priced offer;
5. the first offer that is in stock (``InStock``, ``LimitedAvailability``,
   ``OnlineOnly``, ``InStoreOnly``) is chosen; with none, the cheapest
   (an ``AggregateOffer`` without nested offers counts with its ``lowPrice``).

The chosen offer gives price, currency and availability; its SKU/MPN/GTIN (or
its variant's) fill the product's when the product itself has none.
"""

from __future__ import annotations

import html as htmllib
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urldefrag, urljoin

import extruct
import lxml.html
from lxml.html import HtmlElement
from price_parser import Price

from showroom.common.events import Product

log = logging.getLogger(__name__)

FIELDS = ("name", "brand", "category", "price", "priceCurrency", "availability", "sku", "mpn", "gtin",
          "description", "image")  # fmt: skip
PRODUCT_TYPES = {"Product", "ProductGroup", "IndividualProduct", "ProductModel", "SomeProducts"}
IN_STOCK = {"InStock", "LimitedAvailability", "OnlineOnly", "InStoreOnly"}
_USED = re.compile(r"used|refurb|damaged|gebraucht|occasion|usato|usado|中古", re.I)

_AVAILABILITY = {
    name.lower(): name
    for name in ("InStock", "OutOfStock", "PreOrder", "PreSale", "BackOrder", "Discontinued", "SoldOut",
                 "LimitedAvailability", "OnlineOnly", "InStoreOnly")
}  # fmt: skip
# Values seen in OpenGraph / Facebook catalogue tags and hand-written markup.
_AVAILABILITY_ALIASES = {
    "oos": "OutOfStock",
    "available": "InStock",
    "availablefororder": "BackOrder",
    "instoreonly": "InStoreOnly",
}

# Availability phrases on the visible page, checked category by category in this order,
# so "not in stock" / "nicht auf Lager" / "indisponible" never read as their positive forms.
# fmt: off
_PHRASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Discontinued", (
        "discontinued", "no longer available", "nicht mehr erhältlich", "nicht mehr lieferbar",
        "nicht mehr verfügbar", "n'est plus disponible", "descatalogado", "fuori produzione", "生産終了", "販売終了",
    )),
    ("PreOrder", (
        "pre-order", "preorder", "pre order", "vorbestellen", "vorbestellung", "vorbestellbar", "précommande",
        "pré-commande", "precommande", "preventa", "pre-venta", "preordine", "pre-ordine",
        "予約受付", "予約商品", "予約注文", "予約販売",
    )),
    ("BackOrder", (
        "backorder", "back-order", "back order", "nachbestellt", "en réapprovisionnement",
        "en cours de réapprovisionnement", "お取り寄せ", "取り寄せ",
    )),
    ("SoldOut", (
        "sold out", "sold-out", "ausverkauft", "épuisé", "agotado", "esaurito", "uitverkocht", "売り切れ", "完売",
    )),
    ("OutOfStock", (
        "out of stock", "out-of-stock", "not in stock", "currently unavailable", "unavailable", "not available",
        "nicht auf lager", "nicht vorrätig", "nicht verfügbar", "nicht lieferbar",
        "rupture de stock", "en rupture", "indisponible", "non disponible", "pas en stock", "plus en stock",
        "sin stock", "no disponible", "fuera de stock", "sin existencias", "non disponibile", "niet op voorraad",
        "在庫切れ", "在庫なし", "在庫無し", "品切れ", "欠品",
    )),
    ("LimitedAvailability", (
        r"only \d+ left", "low stock", "limited stock", "few left", r"nur noch \d+", r"plus que \d+",
        "stock limité", "últimas unidades", r"ultimi \d+", "残りわずか", "在庫僅少", r"残り\d+点",
    )),
    ("InStock", (
        "in stock", "instock", "available now", "ready to ship", "auf lager", "lagernd", "sofort lieferbar",
        "lieferbar", "verfügbar", "vorrätig", "en stock", "disponible", "en existencia", "disponibile",
        "in magazzino", "op voorraad", "på lager", "i lager", "na stanie", "在庫あり", "在庫有り", "在庫有", "即納",
    )),
)
# fmt: on


def _phrase_regex(phrase: str) -> str:
    if re.search(r"[\u3000-\u9fff]", phrase):  # CJK: no word boundaries
        return phrase
    body = phrase.replace(" ", r"[\s-]+")
    return rf"(?<![\w-]){body}(?![\w-])"


_PHRASE_RES = [(value, re.compile("|".join(_phrase_regex(p) for p in phrases))) for value, phrases in _PHRASES]

_CART = re.compile(
    r"add to (cart|basket|bag)|buy now|in den warenkorb|jetzt kaufen|ajouter au panier|acheter|añadir al carrito|"
    r"comprar|aggiungi al carrello|acquista|カートに入れる|カートへ|購入する|in winkelwagen",
    re.I,
)
_CART_ATTR = re.compile(r"add[-_]?to[-_]?(cart|basket|bag)|buy[-_]?(now|button)|product[-_]form__submit", re.I)
_PRICE_ATTR = re.compile(r"price|preis|prix|precio|prezzo|kakaku|価格", re.I)
_OLD_PRICE_ATTR = re.compile(
    r"(old|was|compare|strike|crossed|before|rrp|uvp|msrp|list|original)[-_]?price|"
    r"price[-_]?(old|was|compare|before|original|regular-price--compare)|compare[-_]at",
    re.I,
)
_STOCK_ATTR = re.compile(r"stock|availab|inventory|lager|liefer|verf[uü]g|dispon|zaiko", re.I)
_NOISE_ATTR = re.compile(
    r"related|upsell|up-sell|cross-?sell|recommend|recently|similar|also-?bought|you-may-also|cookie|consent|gdpr|"
    r"breadcrumb|newsletter|mini-?cart|cart-drawer",
    re.I,
)
_SHOWN_FROM = re.compile(r"\b\w+:(block|flex|inline|inline-block|inline-flex|grid|table)\b")
_HIDDEN_ATTR = re.compile(r"visually-hidden|sr-only|screen-reader|(^|\s)hidden(\s|$)", re.I)
_SKIP_TAGS = {
    "script", "style", "noscript", "template", "svg", "nav", "footer", "iframe", "del", "s", "strike", "select",
    "option", "aside",
}  # fmt: skip
_CURRENCY_MARK = re.compile(
    r"[€$£¥￥円₹₩₽₺]|(?<![A-Za-z])(EUR|USD|GBP|JPY|CHF|CAD|AUD|NZD|SEK|NOK|DKK|PLN|CZK|HUF|CNY)(?![A-Za-z])|"
    r"(?<![A-Za-z])(kr|zł|Kč)(?![A-Za-z])"
)
_CURRENCIES = {
    "€": "EUR", "euro": "EUR", "euros": "EUR", "$": "USD", "us$": "USD", "£": "GBP", "¥": "JPY", "￥": "JPY",
    "円": "JPY", "fr.": "CHF", "sfr.": "CHF", "c$": "CAD", "ca$": "CAD", "a$": "AUD", "au$": "AUD", "nz$": "NZD",
    "r$": "BRL", "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY", "zł": "PLN", "kč": "CZK", "元": "CNY",
    "rmb": "CNY", "cn¥": "CNY",
}  # fmt: skip
_DOLLAR_BY_REGION = {"ca": "CAD", "au": "AUD", "nz": "NZD", "sg": "SGD", "hk": "HKD", "mx": "MXN"}
_KRONE_BY_LANG = {"sv": "SEK", "da": "DKK", "nb": "NOK", "nn": "NOK", "no": "NOK", "is": "ISK"}

# Labels of "Label: value" texts and spec rows that name an identifier or the brand.
_LABELS = {
    "sku": {
        "sku", "art.-nr.", "art.-nr", "art.nr.", "artikelnummer", "artikel-nr.", "article number", "item number",
        "item no.", "product code", "référence", "réf.", "ref.", "referencia", "código", "codice articolo",
        "品番", "商品番号", "商品コード",
    },
    "mpn": {"mpn", "model number", "model no.", "modellnummer", "herstellernummer", "part number", "型番"},
    "gtin": {"gtin", "ean", "ean-13", "ean13", "upc", "ean/upc", "barcode", "jan", "janコード", "jan code"},
    "brand": {"brand", "marke", "hersteller", "manufacturer", "marque", "fabricant", "marca", "ブランド", "メーカー"},
}  # fmt: skip
_LABELLED = re.compile(r"^([^:\uff1a]{1,30}?)\s*[:\uff1a]\s*(\S.{0,100})$")


# --------------------------------------------------------------------------- helpers


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _short_type(t: Any) -> str:
    return re.split(r"[/:#]", str(t))[-1]


def types(item: dict[str, Any]) -> set[str]:
    return {_short_type(t) for t in as_list(item.get("@type"))}


def _clean(text: Any) -> str | None:
    """One line of text: HTML entities decoded, tags dropped, whitespace collapsed."""
    if text is None or isinstance(text, bool):
        return None
    s = htmllib.unescape(str(text))
    if "<" in s and ">" in s:
        try:
            s = lxml.html.fromstring(f"<div>{s}</div>").text_content()
        except (ValueError, lxml.etree.ParserError):
            pass
    s = " ".join(s.split())
    return s or None


def _first_text(value: Any, keys: tuple[str, ...] = ("name",)) -> str | None:
    for v in as_list(value):
        if isinstance(v, dict):
            v = next((v[k] for k in (*keys, "@value") if v.get(k) not in (None, "", [])), None)
            if isinstance(v, list):
                v = v[0] if v else None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if (text := _clean(v)) is not None:
            return text
    return None


def _identifier(value: Any, width: int | None = None) -> str | None:
    for v in as_list(value):
        if isinstance(v, dict):
            v = v.get("value") or v.get("@value")
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        s = str(v).strip()
        if isinstance(v, int) and width:  # numbers lose leading zeros: put them back
            s = s.zfill(width)
        if s:
            return s
    return None


def _gtin(item: dict[str, Any]) -> str | None:
    for key, width in (("gtin13", 13), ("gtin12", 12), ("gtin14", 14), ("gtin8", 8), ("gtin", None), ("isbn", None)):
        value = _identifier(item.get(key), width)
        if value:
            digits = re.sub(r"[\s-]", "", value)
            if key == "gtin" and (m := re.search(r"/01/(\d{8,14})", digits)):  # GS1 Digital Link
                digits = m.group(1)
            return digits if digits.isdigit() else value
    return None


def amount(value: Any) -> float | None:
    """A positive price from a number, a plain decimal string or text like ``1.299,00 €``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        value = value.get("@value")
    if isinstance(value, (int, float)):
        result: float | None = float(value)
    else:
        s = str(value).strip()
        try:
            result = float(s)
        except ValueError:
            result = Price.fromstring(s).amount_float
    if result is None or not math.isfinite(result) or result <= 0:
        return None
    return result


def currency(value: Any, lang: str = "") -> str | None:
    """An ISO 4217 code from a code or a symbol; ``$``, ``¥`` and ``kr`` read with the page language."""
    text = _first_text(value)
    if not text:
        return None
    t = text.strip()
    if re.fullmatch(r"[A-Za-z]{3}", t):
        return t.upper()
    low = t.lower()
    lang = lang.lower().replace("_", "-")
    primary, _, region = lang.partition("-")
    if low == "$":
        return _DOLLAR_BY_REGION.get(region, "USD")
    if low in ("¥", "￥") and primary == "zh":
        return "CNY"
    if low == "kr":
        return _KRONE_BY_LANG.get(primary)
    if low in _CURRENCIES:
        return _CURRENCIES[low]
    if m := re.search(r"(?<![A-Za-z])([A-Z]{3})(?![A-Za-z])", t):
        return m.group(1)
    return None


def availability(value: Any) -> str | None:
    """A schema.org ``ItemAvailability`` short name from a URL, a short name or a phrase in several languages."""
    text = _first_text(value, ("@id", "name", "url"))
    if not text:
        return None
    key = re.sub(r"[^a-z]", "", _short_type(text.rstrip("/")).lower())
    if key in _AVAILABILITY:
        return _AVAILABILITY[key]
    if key in _AVAILABILITY_ALIASES:
        return _AVAILABILITY_ALIASES[key]
    return availability_phrase(text)


def availability_phrase(text: str) -> str | None:
    low = " ".join(text.lower().split())
    for value, pattern in _PHRASE_RES:
        if pattern.search(low):
            return value
    return None


def _image(value: Any, base: str) -> str | None:
    src = _first_text(value, ("url", "contentUrl", "@id"))
    return urljoin(base, src) if src else None


def _same_url(a: Any, b: str) -> bool:
    return isinstance(a, str) and bool(a) and urldefrag(a)[0].rstrip("/") == urldefrag(b)[0].rstrip("/")


def _norm_name(s: str | None) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", (s or "").casefold()).split())


def _names_match(a: str | None, b: str | None) -> bool:
    x, y = _norm_name(a), _norm_name(b)
    if not x or not y:
        return False
    return x == y or (min(len(x), len(y)) >= 3 and (x in y or y in x))


# --------------------------------------------------------------------------- JSON-LD


def _strip_json_noise(text: str) -> str:
    """Drop comments (``//``, ``/* */``, ``<!-- -->``) and trailing commas outside strings."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
            i += 1
            continue
        if c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif text.startswith("<!--", i):
            i += 4
        elif text.startswith("-->", i):
            i += 3
        elif c == ",":
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] in "}]":
                i += 1  # trailing comma
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _decode_all(text: str) -> list[Any]:
    """Every JSON value in ``text``, also when several are written one after another."""
    decoder = json.JSONDecoder(strict=False)
    values: list[Any] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] in ",;"):
            i += 1
        if i >= n:
            break
        value, i = decoder.raw_decode(text, i)
        values.append(value)
    return values


def parse_json_ld(text: str) -> list[dict[str, Any]]:
    """The items of one ``<script type="application/ld+json">`` block; ``[]`` when it cannot be read."""
    text = text.strip().removeprefix("<![CDATA[").removesuffix("]]>").strip()
    values: list[Any] = []
    for attempt in (text, _strip_json_noise(text), _strip_json_noise(htmllib.unescape(text))):
        try:
            values = _decode_all(attempt)
            break
        except ValueError:
            continue
    else:
        log.debug("unreadable JSON-LD block: %.80r", text)
    items: list[dict[str, Any]] = []
    for value in values:
        items.extend(v for v in as_list(value) if isinstance(v, dict))
    return items


def _index_ids(value: Any, index: dict[str, dict[str, Any]], depth: int = 0) -> None:
    if depth > 20:
        return
    if isinstance(value, dict):
        if isinstance(value.get("@id"), str) and len(value) > 1:
            index.setdefault(value["@id"], value)
        for v in value.values():
            _index_ids(v, index, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _index_ids(v, index, depth + 1)


def _resolve_refs(value: Any, index: dict[str, dict[str, Any]], depth: int = 0) -> Any:
    """Replace ``{"@id": …}`` references by the node they name (shared objects, so cycles stay finite)."""
    if depth > 20:
        return value
    if isinstance(value, dict):
        ref = value.get("@id")
        if isinstance(ref, str) and set(value) <= {"@id", "@type"} and ref in index:
            return index[ref]
        for k, v in list(value.items()):
            value[k] = _resolve_refs(v, index, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            value[i] = _resolve_refs(v, index, depth + 1)
    return value


def json_ld_items(doc: HtmlElement) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for script in doc.xpath("//script[@type]"):
        if "ld+json" in (script.get("type") or "").lower():
            items.extend(parse_json_ld(script.text or ""))
    index: dict[str, dict[str, Any]] = {}
    _index_ids(items, index)
    return [_resolve_refs(item, index) for item in items]


# --------------------------------------------------------------------------- microdata, RDFa, OpenGraph


def microdata_items(doc: HtmlElement, url: str) -> list[dict[str, Any]]:
    if not doc.xpath("boolean(//*[@itemscope])"):
        return []
    try:
        return extruct.extract(doc, base_url=url, syntaxes=["microdata"], uniform=True, errors="ignore").get(
            "microdata", []
        )
    except Exception as exc:  # extruct raises a zoo of parser errors on broken markup
        log.debug("microdata unreadable on %s: %s", url, exc)
        return []


_SCHEMA_KEY = re.compile(r"^https?://schema\.org/(.+)$")


def rdfa_items(html: str, doc: HtmlElement, url: str) -> list[dict[str, Any]]:
    """schema.org RDFa nodes as nested dicts shaped like JSON-LD (only when the page has typed RDFa nodes)."""
    if not doc.xpath("boolean(//*[@typeof])"):
        return []
    try:
        nodes = extruct.extract(html, base_url=url, syntaxes=["rdfa"], errors="ignore").get("rdfa", [])
    except Exception as exc:
        log.debug("RDFa unreadable on %s: %s", url, exc)
        return []
    index = {n["@id"]: n for n in nodes if isinstance(n, dict) and "@id" in n}
    referenced = {
        v["@id"]
        for n in nodes
        for k, vs in n.items()
        if _SCHEMA_KEY.match(k) and isinstance(vs, list)
        for v in vs
        if isinstance(v, dict) and "@id" in v
    }

    def compact(node: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"@type": [_short_type(t) for t in node.get("@type", [])]}
        if not str(node.get("@id", "_:")).startswith("_:"):
            out["@id"] = node["@id"]
        for key, values in node.items():
            m = _SCHEMA_KEY.match(key)
            if not m or not isinstance(values, list):
                continue
            vals: list[Any] = []
            for v in values:
                if not isinstance(v, dict):
                    continue
                if "@value" in v:
                    vals.append(v["@value"])
                elif "@id" in v:
                    ref = index.get(v["@id"])
                    if ref is not None and v["@id"] not in seen and len(ref) > 1:
                        vals.append(compact(ref, seen | {v["@id"]}))
                    else:
                        vals.append(v["@id"])
            if vals:
                out[m.group(1)] = vals[0] if len(vals) == 1 else vals
        return out

    return [
        compact(n, frozenset({n["@id"]}))
        for n in nodes
        if isinstance(n, dict) and n.get("@type") and n.get("@id") not in referenced
    ]


def meta_tags(doc: HtmlElement) -> dict[str, str]:
    """First non-empty ``content`` of each ``<meta property|name>``, keys lower-cased."""
    tags: dict[str, str] = {}
    for m in doc.xpath("//meta[@content]"):
        key = (m.get("property") or m.get("name") or "").strip().lower()
        value = (m.get("content") or "").strip()
        if key and value and key not in tags:
            tags[key] = value
    return tags


def _og(tags: dict[str, str], *keys: str) -> str | None:
    return next((tags[k] for k in keys if tags.get(k)), None)


def is_og_product(tags: dict[str, str]) -> bool:
    return "product" in tags.get("og:type", "").lower() or any(
        k.startswith(("product:price", "og:price")) for k in tags
    )


def opengraph_fields(tags: dict[str, str], url: str, lang: str) -> dict[str, Any]:
    if not is_og_product(tags):
        return {}
    return {
        "name": _clean(_og(tags, "og:title")),
        "brand": _clean(_og(tags, "product:brand", "og:brand")),
        "category": _clean(_og(tags, "product:category")),
        "price": amount(_og(tags, "product:sale_price:amount", "product:price:amount", "og:price:amount")),
        "priceCurrency": currency(
            _og(tags, "product:sale_price:currency", "product:price:currency", "og:price:currency"), lang
        ),
        "availability": availability(_og(tags, "product:availability", "og:availability")),
        "sku": _clean(_og(tags, "product:retailer_item_id", "og:retailer_item_id")),
        "mpn": _clean(_og(tags, "product:mfr_part_no")),
        "gtin": _clean(_og(tags, "product:gtin", "product:ean", "product:upc", "product:isbn")),
        "description": _clean(_og(tags, "og:description")),
        "image": _image(_og(tags, "og:image:secure_url", "og:image", "og:image:url"), url),
        "specs": {},
    }


# --------------------------------------------------------------------------- structured items -> fields


@dataclass
class _Offer:
    price: float | None
    currency: str | None
    availability: str | None
    new: bool
    url: str | None
    identifiers: dict[str, str | None]
    variant: dict[str, Any] | None
    order: int


def _offer(o: dict[str, Any], variant: dict[str, Any] | None, parent: dict[str, Any], lang: str, base: str) -> _Offer:
    price = amount(o.get("price"))
    cur = o.get("priceCurrency")
    if price is None:
        for spec in as_list(o.get("priceSpecification")):
            if not isinstance(spec, dict):
                continue
            kind = str(spec.get("priceType") or "")
            if re.search(r"ListPrice|Strikethrough|MSRP|SRP|InvoicePrice", kind, re.I):
                continue
            if (price := amount(spec.get("price"))) is not None:
                cur = cur or spec.get("priceCurrency")
                break
    if price is None:
        price = amount(o.get("lowPrice"))
    condition = _first_text(o.get("itemCondition") or parent.get("itemCondition"), ("@id", "name"))
    off_url = _first_text(o.get("url"), ("@id", "url")) or (
        _first_text(variant.get("url") or variant.get("@id"), ("@id",)) if variant else None
    )
    return _Offer(
        price=price,
        currency=currency(cur or parent.get("priceCurrency"), lang),
        availability=availability(o.get("availability") or parent.get("availability")),
        new=condition is None or not _USED.search(condition),
        url=urljoin(base, off_url) if off_url else None,
        identifiers={"sku": _identifier(o.get("sku")), "mpn": _identifier(o.get("mpn")), "gtin": _gtin(o)},
        variant=variant,
        order=0,
    )


def _offers(item: dict[str, Any], lang: str, base: str) -> list[_Offer]:
    found: list[_Offer] = []
    owners: list[tuple[dict[str, Any], dict[str, Any] | None]] = [(item, None)]
    owners += [(v, v) for v in as_list(item.get("hasVariant")) if isinstance(v, dict)]
    for owner, variant in owners:
        for o in as_list(owner.get("offers")):
            if not isinstance(o, dict):
                continue
            nested = [x for x in as_list(o.get("offers")) if isinstance(x, dict)]
            expanded = [_offer(x, variant, o, lang, base) for x in nested]
            if any(x.price is not None for x in expanded):
                found.extend(expanded)
            else:
                found.append(_offer(o, variant, {}, lang, base))
        if not owner.get("offers") and owner.get("price") is not None:  # price written on the product itself
            found.append(_offer(owner, variant, {}, lang, base))
    for i, offer in enumerate(found):
        offer.order = i
    return found


def choose_offer(offers: list[_Offer], page_url: str, preferred_currency: str | None = None) -> _Offer | None:
    """The offer whose price the page stands for (rule in the module docstring)."""
    if not offers:
        return None
    pool = offers
    own = [o for o in pool if _same_url(o.url, page_url)]
    if own and len({o.url for o in pool}) > 1:
        pool = own
    pool = [o for o in pool if o.price is not None] or pool
    pool = [o for o in pool if o.new] or pool
    currencies = [o.currency for o in pool if o.currency and o.price is not None]
    main = preferred_currency if preferred_currency in currencies else (currencies[0] if currencies else None)
    if main:
        pool = [o for o in pool if o.currency in (main, None)]
    in_stock = [o for o in pool if o.availability in IN_STOCK]
    if in_stock:
        return in_stock[0]
    priced = [o for o in pool if o.price is not None]
    if priced:
        return min(priced, key=lambda o: (o.price, o.order))
    return pool[0]


def _properties(item: dict[str, Any]) -> dict[str, str]:
    specs: dict[str, str] = {}
    for p in as_list(item.get("additionalProperty")):
        if not isinstance(p, dict):
            continue
        name, value = _first_text(p.get("name")), _first_text(p.get("value"))
        if not name or value is None:
            continue
        unit = _first_text(p.get("unitText"))
        specs.setdefault(name, f"{value} {unit}" if unit and not value.endswith(unit) else value)
    return specs


def item_fields(item: dict[str, Any], page_url: str, lang: str, preferred_currency: str | None) -> dict[str, Any]:
    """The product fields one schema.org ``Product``/``ProductGroup`` item gives (``None`` where absent)."""
    chosen = choose_offer(_offers(item, lang, page_url), page_url, preferred_currency)
    variant = chosen.variant if chosen else None
    variants = [v for v in as_list(item.get("hasVariant")) if isinstance(v, dict)]
    if variant is None and len(variants) == 1:
        variant = variants[0]
    fallback = variant or {}
    ids = chosen.identifiers if chosen else {}

    def ident(key: str) -> str | None:
        own = _gtin(item) if key == "gtin" else _identifier(item.get(key))
        var = _gtin(fallback) if key == "gtin" else _identifier(fallback.get(key))
        return own or var or ids.get(key)

    specs = _properties(item)
    for k, v in _properties(fallback).items():
        specs.setdefault(k, v)
    return {
        "name": _first_text(item.get("name")) or _first_text(fallback.get("name")),
        "brand": _first_text(item.get("brand")) or _first_text(fallback.get("brand")),
        "category": _first_text(item.get("category")) or _first_text(fallback.get("category")),
        "price": chosen.price if chosen else None,
        "priceCurrency": chosen.currency if chosen else None,
        "availability": chosen.availability if chosen else None,
        "sku": ident("sku") or _identifier(item.get("productGroupID")),
        "mpn": ident("mpn"),
        "gtin": ident("gtin"),
        "description": _first_text(item.get("description")) or _first_text(fallback.get("description")),
        "image": _image(item.get("image"), page_url) or _image(fallback.get("image"), page_url),
        "specs": specs,
    }


def find_products(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Product items at the top of a source: top-level, in ``@graph``, a page's ``mainEntity``, an offer's
    ``itemOffered``.  Products nested inside a product (related items, variants) are not separate products,
    and neither are the members of an ``ItemList``."""
    found: list[dict[str, Any]] = []
    seen: set[int] = set()
    stack = list(items)[::-1]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict) or id(item) in seen:
            continue
        seen.add(id(item))
        if types(item) & PRODUCT_TYPES:
            found.append(item)
            continue
        for key in ("itemOffered", "mainEntity", "@graph"):
            stack.extend(reversed(as_list(item.get(key))))
    return found


def pick_product(
    products: list[dict[str, Any]], page_url: str, page_name: str | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The page's own product among a source's products, plus other descriptions of that same product.

    Several different products with none matching the page's URL or heading is a listing: no product.
    """
    if not products:
        return None, []

    def key(p: dict[str, Any]) -> str:
        return _identifier(p.get("sku")) or _norm_name(_first_text(p.get("name"))) or str(id(p))

    distinct = list({key(p): p for p in reversed(products)}.values())[::-1]
    if len(distinct) == 1:
        main = products[0]
    else:
        main = next(
            (p for p in products if _same_url(_first_text(p.get("url") or p.get("@id"), ("@id",)), page_url)),
            None,
        ) or next((p for p in products if _names_match(_first_text(p.get("name")), page_name)), None)
        if main is None:
            return None, []
    same = [p for p in products if p is not main and key(p) == key(main)]
    return main, same


# --------------------------------------------------------------------------- visible-text heuristics


def _attrs(el: HtmlElement) -> str:
    return " ".join(
        v for k, v in el.attrib.items() if k in ("class", "id", "itemprop", "data-testid") or k.startswith("data-")
    )


def main_region(doc: HtmlElement) -> HtmlElement | None:
    for xp in ("//main", "//article", "//*[@role='main']", "//*[@id='content']", "//body"):
        found = doc.xpath(xp)
        if found:
            return found[0]
    return None


@dataclass
class _Block:
    """One element of the main region and its visible text (``None`` when longer than ``_MAX_TEXT``)."""

    el: HtmlElement
    tag: str
    attrs: str
    text: str | None = None


_MAX_TEXT = 120
_BLOCK_TAGS = {
    "address", "article", "br", "dd", "div", "dl", "dt", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6",
    "hr", "li", "ol", "p", "section", "table", "tbody", "td", "th", "tr", "ul", "button", "label", "fieldset",
}  # fmt: skip


def _region(root: HtmlElement, budget: int = 4000) -> list[_Block]:
    """Elements of the main region in document order, without boilerplate, hidden elements, struck prices or
    other products' blocks, up to about ``budget`` characters of text (the top of the page).

    One pass: each element's visible text is built from its children's, so the cost stays linear in the page.
    """
    blocks: list[_Block] = []
    seen = 0
    skip_header = root.tag == "body"

    def walk(el: HtmlElement) -> str | None:
        nonlocal seen
        parts = [el.text or ""]
        too_long = False
        for child in el:
            if seen > budget:
                break
            tag = child.tag.lower() if isinstance(child.tag, str) else ""
            attrs = _attrs(child) if tag else ""
            if (
                not tag
                or tag in _SKIP_TAGS
                or (skip_header and tag == "header")
                or _hidden(child)
                or (
                    (_NOISE_ATTR.search(attrs) or child.get("role") in ("navigation", "dialog", "banner"))
                    and child.find(".//h1") is None  # a wrapper with a noisy class name still holds the product
                )
            ):
                parts.append(child.tail or "")
                continue
            block = _Block(child, tag, attrs)
            blocks.append(block)
            seen += len((child.text or "").strip())
            block.text = walk(child)
            if not _OLD_PRICE_ATTR.search(attrs):
                if block.text is None:
                    too_long = True
                else:
                    sep = " " if tag in _BLOCK_TAGS else ""
                    parts.append(f"{sep}{block.text}{sep}")
            parts.append(child.tail or "")
            seen += len((child.tail or "").strip())
        text = " ".join("".join(parts).split())
        return None if too_long or len(text) > _MAX_TEXT else text

    walk(root)
    return blocks


def _hidden(el: HtmlElement) -> bool:
    style = (el.get("style") or "").replace(" ", "").lower()
    cls = el.get("class") or ""
    # Utility CSS writes "hidden md:block" for an element shown from some width up: that one is visible.
    return (
        el.get("hidden") is not None
        or "display:none" in style
        or (bool(_HIDDEN_ATTR.search(cls)) and not _SHOWN_FROM.search(cls))
    )


def _parse_price(text: str, lang: str) -> tuple[float | None, str | None]:
    if not re.search(r"\d", text):
        return None, None
    p = Price.fromstring(text)
    value = amount(p.amount_float)
    return value, currency(p.currency, lang) if p.currency else None


def visible_price(blocks: list[_Block], lang: str) -> tuple[float | None, str | None]:
    """The first price in an element marked as a price, else the first short text with a currency sign."""
    bare: tuple[float | None, str | None] = (None, None)
    for b in blocks:
        if not b.text or len(b.text) > 60 or not _PRICE_ATTR.search(b.attrs) or _OLD_PRICE_ATTR.search(b.attrs):
            continue
        value, cur = _parse_price(b.text, lang)
        if value is not None and cur:
            return value, cur
        if value is not None and bare[0] is None:
            bare = (value, None)
    if bare[0] is not None:
        return bare
    for b in blocks:
        if b.text and len(b.text) <= 30 and _CURRENCY_MARK.search(b.text) and not _OLD_PRICE_ATTR.search(b.attrs):
            value, cur = _parse_price(b.text, lang)
            if value is not None and cur:
                return value, cur
    return None, None


def visible_availability(blocks: list[_Block]) -> str | None:
    """An availability phrase in a stock/availability element or a button, else in any short text."""

    def texts(marked: bool) -> Iterator[str]:
        for b in blocks:
            if marked and not (b.tag == "button" or _STOCK_ATTR.search(b.attrs)):
                continue
            if b.tag == "input" and (b.el.get("type") or "").lower() in ("submit", "button"):
                yield b.el.get("value") or ""
            if b.text and len(b.text) <= (_MAX_TEXT if marked else 80):
                yield b.text

    for marked in (True, False):
        for text in texts(marked):
            if value := availability_phrase(text):
                return value
    return None


def has_buy_button(blocks: list[_Block]) -> bool:
    for b in blocks:
        if b.tag not in ("button", "input", "a", "form"):
            continue
        if _CART_ATTR.search(b.attrs + " " + (b.el.get("name") or "")):
            return True
        label = b.el.get("value") if b.tag == "input" else b.text
        if b.tag != "form" and label and len(label) <= 40 and _CART.search(label):
            return True
    return False


def labelled_values(blocks: list[_Block], specs: dict[str, str]) -> dict[str, str]:
    """Identifiers and brand from ``Label: value`` texts and spec rows (``SKU: AB-12``, ``EAN``, ``品番``…)."""
    pairs: list[tuple[str, str]] = list(specs.items())
    for b in blocks:
        if b.text and len(b.text) <= 100 and (m := _LABELLED.match(b.text)):
            pairs.append((m.group(1), m.group(2)))
    found: dict[str, str] = {}
    for label, value in pairs:
        low = label.strip().lower().rstrip(":\uff1a").strip()
        for field_name, labels in _LABELS.items():
            if low in labels and field_name not in found:
                value = value.strip()
                if field_name == "gtin":
                    digits = re.sub(r"[\s-]", "", value)
                    if not (digits.isdigit() and len(digits) in (8, 12, 13, 14)):
                        continue
                    value = digits
                found[field_name] = value
    return found


def heading(doc: HtmlElement, root: HtmlElement | None) -> str | None:
    for scope in (root, doc):
        if scope is None:
            continue
        for h1 in scope.xpath(".//h1[not(ancestor::nav or ancestor::footer or ancestor::aside)]"):
            if text := _clean(h1.text_content()):
                return text
    return None


def heuristic_fields(
    doc: HtmlElement, url: str, lang: str, tags: dict[str, str], specs: dict[str, str], *, require_signals: bool
) -> dict[str, Any] | None:
    """Fields from the visible page.  With ``require_signals`` (no structured product), ``None`` unless the page
    looks like a product page: a heading, a price and a buy button or an availability phrase."""
    root = main_region(doc)
    blocks = _region(root) if root is not None else []
    name = heading(doc, root)
    price, cur = visible_price(blocks, lang)
    if require_signals and not (name and price is not None):
        return None  # before the availability phrases: matching them is most of an article page's extraction
    avail = visible_availability(blocks)
    if require_signals and not (avail or has_buy_button(blocks)):
        return None
    labelled = labelled_values(blocks, specs)
    return {
        "name": name,
        "brand": labelled.get("brand"),
        "category": None,
        "price": price,
        "priceCurrency": cur,
        "availability": avail,
        "sku": labelled.get("sku"),
        "mpn": labelled.get("mpn"),
        "gtin": labelled.get("gtin"),
        "description": _clean(tags.get("description")),
        "image": _image(_og(tags, "og:image:secure_url", "og:image") or _link_image(doc), url),
        "specs": {},
    }


def _link_image(doc: HtmlElement) -> str | None:
    found = doc.xpath("//link[@rel='image_src']/@href")
    return found[0] if found else None


# --------------------------------------------------------------------------- all together


def page_language(doc: HtmlElement) -> str:
    found = doc.xpath("/html/@lang | //meta[@http-equiv='content-language']/@content")
    return str(found[0]).strip() if found else ""


def _same_product(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.get("sku") and b.get("sku"):
        return bool(a["sku"] == b["sku"])
    return not (a.get("name") and b.get("name")) or _names_match(a["name"], b["name"])


def extract_product(html: str, doc: HtmlElement, url: str, page_specs: dict[str, str]) -> Product | None:
    """The page's product, merged from every source by priority, or ``None`` for a page that isn't one.

    ``doc`` must be the whole parsed page, before boilerplate is removed from it.
    """
    lang = page_language(doc)
    tags = meta_tags(doc)
    preferred = currency(_og(tags, "product:price:currency", "og:price:currency"), lang)
    page_name = heading(doc, main_region(doc)) or _clean(tags.get("og:title"))

    sources: list[dict[str, Any]] = []
    listing = False
    for items in (json_ld_items(doc), microdata_items(doc, url), rdfa_items(html, doc, url)):
        products = find_products(items)
        main, same = pick_product(products, url, page_name)
        if main is None:
            listing = listing or bool(products)
            continue
        found = [item_fields(item, url, lang, preferred) for item in (main, *same)]
        if sources and not _same_product(sources[0], found[0]):
            continue  # a lower source describing some other product (a widget, a related item) fills nothing
        sources.extend(found)
    structured = bool(sources)
    if og := opengraph_fields(tags, url, lang):
        sources.append(og)
    if listing and not sources:  # several products and none of them the page's own: a category page
        return None
    heuristics = heuristic_fields(doc, url, lang, tags, page_specs, require_signals=not sources)
    if heuristics:
        sources.append(heuristics)
    if not sources:
        return None
    merged: dict[str, Any] = {f: next((s[f] for s in sources if s.get(f) is not None), None) for f in FIELDS}
    # Price and currency travel together: the source that gives the price gives its currency when it names one.
    priced = next((s for s in sources if s.get("price") is not None), None)
    if priced is not None and priced.get("priceCurrency"):
        merged["priceCurrency"] = priced["priceCurrency"]
    specs: dict[str, str] = {}
    for s in sources:
        for k, v in s.get("specs", {}).items():
            specs.setdefault(k, v)
    for k, v in page_specs.items():
        specs.setdefault(k, v)
    if not structured and not (merged["name"] or merged["price"] is not None):
        return None
    if all(v is None for v in merged.values()) and not specs:  # a Product node with nothing in it
        return None
    return Product(**merged, specs=specs)
