from showroom.scraper.adaptive import needs_rendering, url_pattern

PRODUCT_LD = '<script type="application/ld+json">{"@type": "Product", "name": "NW-8 Monitor"}</script>'
SHELL = (
    f'<html><head>{PRODUCT_LD}<script src="/static/app.js"></script></head>'
    '<body><nav>Home Products Support</nav><main id="app"></main></body></html>'
)
PROSE = "Choosing studio monitors for a small room. " * 20
STATIC = f"<html><body><main><h1>Buying guide</h1><p>{PROSE}</p></main></body></html>"


def test_an_empty_app_shell_needs_a_browser() -> None:
    assert needs_rendering(SHELL)


def test_a_static_article_does_not() -> None:
    assert not needs_rendering(STATIC)
    assert not needs_rendering(STATIC.replace("</body>", "<script src='/analytics.js'></script></body>"))


def test_structured_data_naming_a_product_the_text_does_not_show_needs_a_browser() -> None:
    page = STATIC.replace("<html>", "<html>" + PRODUCT_LD).replace("</body>", "<script src='/app.js'></script></body>")
    assert needs_rendering(page)
    assert not needs_rendering(page.replace("Buying guide", "NW-8 Monitor"))


def test_url_patterns_group_pages_of_one_section() -> None:
    assert url_pattern("http://h:8/northwind/products/nw-8-monitor") == "h:8/northwind/products/*"
    assert url_pattern("http://h/lab/static/articles/12") == "h/lab/static/articles/*"
    assert url_pattern("http://h/blog/2024/11/post") == "h/blog/N/N/*"
    assert url_pattern("http://h/support") == "h/support"
