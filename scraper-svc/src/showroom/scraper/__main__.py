"""``python -m showroom.scraper``: run scraper-svc."""

from showroom.common.service import serve


def main() -> None:
    from showroom.scraper.app import app, settings

    serve(app, settings, "scraper-svc")


if __name__ == "__main__":
    main()
