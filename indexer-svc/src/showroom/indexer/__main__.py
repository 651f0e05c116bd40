"""``python -m showroom.indexer``: run indexer-svc."""

import os

# One BLAS thread per call, unless the deployment says otherwise; set before numpy loads OpenBLAS.
# The embedder runs on onnxruntime (one thread per text); what numpy still multiplies here is
# small (BM25, replay bookkeeping), and an idle OpenBLAS thread pool spin-waits between calls.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    # Imported here, not above: a replay's worker process (spawned) imports this module again, and
    # needs none of the service.
    from showroom.common.service import serve
    from showroom.indexer.app import app, settings

    serve(app, settings, "indexer-svc")


if __name__ == "__main__":
    main()
