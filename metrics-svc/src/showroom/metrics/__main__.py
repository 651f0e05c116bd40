"""``python -m showroom.metrics``: run metrics-svc."""

from showroom.common.service import serve


def main() -> None:
    from showroom.metrics.app import app, settings

    serve(app, settings, "metrics-svc")


if __name__ == "__main__":
    main()
