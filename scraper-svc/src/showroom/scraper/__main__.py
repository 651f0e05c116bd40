"""``python -m showroom.scraper``: run scraper-svc."""

import os

# Playwright's node driver, unless the deployment says otherwise: a 1 MB young generation instead
# of V8's default 16 MB semi-spaces.  The driver relays every page's protocol traffic, and with the
# default it held ~218 MB PSS over a 300-page crawl against ~138 MB, at the same pages/min.
os.environ.setdefault("NODE_OPTIONS", "--max-semi-space-size=1")

from showroom.common.service import serve


def main() -> None:
    from showroom.scraper.app import app, settings

    serve(app, settings, "scraper-svc")


if __name__ == "__main__":
    main()
