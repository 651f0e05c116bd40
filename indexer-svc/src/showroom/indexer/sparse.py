"""BM25 keyword vectors for hybrid retrieval, computed offline by Qdrant Edge's own BM25.

Documents get term-frequency weights saturated and length-normalised with BM25's ``k`` and
``b``; queries get weight 1 per distinct term.  The store applies IDF at search time (the
``bm25`` sparse vector is configured with the IDF modifier on both backends), so the product is
the BM25 score.  The same encoder feeds both backends: a Qdrant server stores the vectors we
compute rather than running its own inference, which keeps the two backends identical.
"""

from __future__ import annotations

from array import array

from showroom.indexer.store import Sparse


class Bm25Encoder:
    name = "qdrant-edge-bm25-english"

    def __init__(self, avg_len: float = 120.0) -> None:
        import qdrant_edge

        self.avg_len = avg_len
        # Chunks are ~120 words after the identity header; avg_len is in tokens after stopwords.
        self._model = qdrant_edge.Bm25(qdrant_edge.Bm25Config(language="english", avg_len=avg_len))

    def embed_documents(self, texts: list[str]) -> list[Sparse]:
        """As compact arrays: a replay's worker process sends them back to be written, and a
        list of floats takes ~4x longer to unpickle.  The engine's own weights are 32-bit."""
        out = []
        for text in texts:
            v = self._model.embed_document(text)
            out.append(Sparse(array("I", v.indices), array("f", v.values)))
        return out

    def embed_query(self, text: str) -> Sparse:
        v = self._model.embed_query(text)
        return Sparse(list(v.indices), list(v.values))
