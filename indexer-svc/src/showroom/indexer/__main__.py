"""``python -m showroom.indexer``: run indexer-svc."""

import os

# One BLAS thread per call, unless the deployment says otherwise; set before numpy loads OpenBLAS.
# A query is a ~15-token forward pass: OpenBLAS's second thread buys it nothing, and between
# calls it spin-waits (~0.1 s per call), which cost ~60 ms of CPU per search at 20 staff-paced
# clients against 13 ms single-threaded (bench/query_latency.py).  Concurrency comes from
# elsewhere: query batches and indexing batches run in threads of their own.  Indexing a
# batch of long chunks loses ~15% of wall-clock speed and spends ~35% less CPU.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from showroom.common.service import serve


def main() -> None:
    from showroom.indexer.app import app, settings

    serve(app, settings, "indexer-svc")


if __name__ == "__main__":
    main()
