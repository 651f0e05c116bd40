"""all-MiniLM-L6-v2 as an ONNX graph, built from the model's own safetensors weights.

No ONNX export of these weights is installable from a package index, and exporting one needs
torch (a multi-GB install).  The model is small and plain -- a 6-layer, 384-wide BERT encoder,
mean pooling, L2 normalisation -- so this module writes the graph itself with ``onnx.helper``:
about forty lines of standard ONNX operators (opset 20), which onnxruntime then optimises and
runs.  ``tests/unit/test_embedding.py`` checks its vectors against ones produced by the real
sentence-transformers + PyTorch.

The graph embeds **one sequence** per run: ``input_ids`` (int64, ``[tokens]``) in, the unit
``embedding`` (float32, ``[384]``) out.  Single sequences need no padding, no attention mask and
no masked pooling, and on this model they are also the fastest way to run onnxruntime on a CPU
(a batch of 16 equal-length chunks runs ~20% slower per chunk than 16 single runs: attention
and the activations stop fitting in cache).  A text's vector therefore cannot depend on which
other texts were embedded with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 20  # Gelu, and ReduceMean/ReduceL2 taking their axes as an input


class _GraphBuilder:
    """Collects nodes and initializers; every node gets a fresh output name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs: object) -> str | list[str]:
        names = [f"{op_type.lower()}_{len(self.nodes)}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


def build_minilm_graph(
    weights: Mapping[str, np.ndarray], *, layers: int, heads: int, hidden: int, eps: float
) -> onnx.ModelProto:
    """The ONNX model of a BERT encoder + mean pooling + L2 normalisation over ``weights``
    (the tensors of the model's ``model.safetensors``, named as in ``transformers``)."""

    def w(key: str) -> np.ndarray:
        return np.asarray(weights[key], dtype=np.float32)

    g = _GraphBuilder()
    head_dim = hidden // heads
    zero_i64 = g.const("zero_i64", np.array([0], np.int64))
    eps_vec = g.const("norm_eps", np.array(1e-12, np.float32))

    def layer_norm(x: str, prefix: str) -> str:
        gamma, beta = g.const(prefix + ".weight", w(prefix + ".weight")), g.const(prefix + ".bias", w(prefix + ".bias"))
        return g.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=eps)

    def dense(x: str, prefix: str, weight: np.ndarray | None = None, bias: np.ndarray | None = None) -> str:
        # torch's Linear stores (out, in); MatMul wants (in, out).
        weight = w(prefix + ".weight") if weight is None else weight
        bias = w(prefix + ".bias") if bias is None else bias
        product = g.op("MatMul", x, g.const(prefix + ".weight_t", weight.T))
        return g.op("Add", product, g.const(prefix + ".bias", bias))

    # Embeddings: token_type_ids are all 0 for one sentence, so that row folds into the positions.
    tokens = g.op("Shape", "input_ids")
    positions = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    x = g.op(
        "Add",
        g.op("Gather", g.const("word_embeddings", w("embeddings.word_embeddings.weight")), "input_ids"),
        g.op("Slice", g.const("position_embeddings", positions), zero_i64, tokens),
    )
    x = layer_norm(x, "embeddings.LayerNorm")

    qkv_shape = g.const("qkv_shape", np.array([0, 3, heads, head_dim], np.int64))
    hidden_shape = g.const("hidden_shape", np.array([0, hidden], np.int64))
    split_sizes = g.const("qkv_split", np.array([1, 1, 1], np.int64))
    scale = np.float32(1.0 / math.sqrt(head_dim))
    for i in range(layers):
        p = f"encoder.layer.{i}."
        att = p + "attention.self."
        # Query, key and value in one matmul; the query pre-scaled by 1/sqrt(head_dim).
        qkv_weight = np.concatenate([w(att + "query.weight") * scale, w(att + "key.weight"), w(att + "value.weight")])
        qkv_bias = np.concatenate([w(att + "query.bias") * scale, w(att + "key.bias"), w(att + "value.bias")])
        qkv = dense(x, att + "qkv", qkv_weight, qkv_bias)  # (tokens, 3*hidden)
        qkv = g.op("Transpose", g.op("Reshape", qkv, qkv_shape), perm=[1, 2, 0, 3])  # (3, heads, tokens, hd)
        q, k, v = (g.op("Squeeze", part, zero_i64) for part in g.op("Split", qkv, split_sizes, outputs=3, axis=0))
        scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 2, 1]))  # (heads, tokens, tokens)
        context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)  # (heads, tokens, hd)
        context = g.op("Reshape", g.op("Transpose", context, perm=[1, 0, 2]), hidden_shape)
        x = layer_norm(g.op("Add", dense(context, p + "attention.output.dense"), x), p + "attention.output.LayerNorm")
        inner = g.op("Gelu", dense(x, p + "intermediate.dense"), approximate="none")
        x = layer_norm(g.op("Add", dense(inner, p + "output.dense"), x), p + "output.LayerNorm")

    # sentence-transformers' Pooling (mean over the tokens), then Normalize.
    pooled = g.op("ReduceMean", x, zero_i64, keepdims=0)
    norm = g.op("Max", g.op("ReduceL2", pooled, zero_i64, keepdims=1), eps_vec)
    g.nodes.append(helper.make_node("Div", [pooled, norm], ["embedding"]))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [hidden])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="showroom")
    onnx.checker.check_model(model)
    return model
