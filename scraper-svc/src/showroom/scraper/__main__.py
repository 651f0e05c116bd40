"""``python -m showroom.scraper``: run scraper-svc."""

import os
from pathlib import Path

# Playwright's node driver, unless the deployment says otherwise: a 1 MB young generation instead
# of V8's default 16 MB semi-spaces (the driver relays every page's protocol traffic, and with the
# default it held ~218 MB PSS over a 300-page crawl against ~138 MB, at the same pages/min), and a
# heap that grows less eagerly (node_heap.js: ~123 MB).
os.environ.setdefault("NODE_OPTIONS", f'--max-semi-space-size=1 --require "{Path(__file__).with_name("node_heap.js")}"')

from showroom.common.service import serve


def main() -> None:
    from showroom.scraper.app import app, settings

    serve(app, settings, "scraper-svc")


if __name__ == "__main__":
    main()
