"""``python -m showroom.indexer``: run indexer-svc."""

from showroom.common.service import serve


def main() -> None:
    from showroom.indexer.app import app, settings

    serve(app, settings, "indexer-svc")


if __name__ == "__main__":
    main()
