"""``GET /v1/products``: structured search over the products extracted from crawled pages.

"All Northwind studio monitors under $300 in stock" is a filter, not a question: it goes to
indexer-svc over ``index.products`` and never touches an LLM.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from showroom.common.events import BRAND_PATTERN, ProductSearchRequest, ProductSearchResponse, ProductSummary
from showroom.common.topology import Subjects

router = APIRouter(tags=["products"])

PRODUCTS_TIMEOUT_S = 10.0


@router.get("/v1/products", response_model=list[ProductSummary])
async def list_products(
    request: Request,
    brand: Annotated[str | None, Query(pattern=BRAND_PATTERN, description="Brand slug, e.g. `northwind`.")] = None,
    category: Annotated[str | None, Query(max_length=200, description="Category name, any case.")] = None,
    min_price: Annotated[float | None, Query(ge=0)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
    in_stock: Annotated[bool | None, Query(description="Only products in stock (true) or not (false).")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Words that must all appear in the product.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ProductSummary]:
    """Products matching every given filter, cheapest first."""
    search = ProductSearchRequest(brand=brand, category=category, min_price=min_price, max_price=max_price,
                                  in_stock=in_stock, q=q, limit=limit)  # fmt: skip
    broker: NatsBroker = request.app.state.broker
    try:
        reply = await broker.request(search, Subjects.PRODUCTS, timeout=PRODUCTS_TIMEOUT_S)
    except NoRespondersError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "indexer-svc is not running") from exc
    except (NatsTimeout, TimeoutError) as exc:
        raise HTTPException(status.HTTP_504_GATEWAY_TIMEOUT, "indexer-svc did not answer in time") from exc
    response = ProductSearchResponse.model_validate_json(reply.body)
    if response.error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, response.error)
    return response.products
