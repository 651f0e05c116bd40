"""``python -m showroom.rag``: run rag-svc."""

from showroom.common.service import serve


def main() -> None:
    from showroom.rag.app import app, settings

    serve(app, settings, "rag-svc")


if __name__ == "__main__":
    main()
