"""Operations: the op table (:data:`OPS`), their layers in two forms, and the cost model.

* :mod:`~dso_nas.ops.cost` - :class:`Cost` and the analytic counts of every layer kind;
* :mod:`~dso_nas.ops.backends` - the op forms (``"onednn"``, ``"reference"``), chosen per context;
* :mod:`~dso_nas.ops.layers` - BN-ReLU, depthwise convolution, poolings in both forms;
* :mod:`~dso_nas.ops.mbconv` - MBConv, the mobile space's operation;
* :mod:`~dso_nas.ops.darts` - the DARTS cell space's operations (and NASP's);
* :mod:`~dso_nas.ops.table` - the op registry with its uniform constructor and cost;
* :mod:`~dso_nas.ops.graph` - :func:`graph_cost`, the analytic model checked on the built graph.
"""
from .backends import BACKENDS, ONEDNN, REFERENCE, backend_for_contexts, check_backend
from .cost import Cost, bn_cost, conv_cost, conv_out_size, dense_cost, pool_cost, sum_cost, total
from .darts import DARTS_OP_NAMES, FactorizedReduce, ReLUConvBN
from .graph import graph_cost
from .layers import BNReLU, DepthwiseConv, depthwise_column_split, global_avg_pool, pool2d, to_blocked_layout
from .table import (OPS, OpSpec, PoolBNReLU, SepConv, build_op, check_ops, darts_op, op_cost, pool_bn_relu_cost,
                    sep_conv_cost)

__all__ = ["BACKENDS", "ONEDNN", "REFERENCE", "backend_for_contexts", "check_backend", "Cost", "bn_cost",
           "conv_cost", "conv_out_size", "dense_cost", "pool_cost", "sum_cost", "total", "graph_cost", "BNReLU",
           "DepthwiseConv", "depthwise_column_split", "global_avg_pool", "pool2d", "to_blocked_layout", "OPS",
           "OpSpec", "PoolBNReLU", "SepConv", "build_op", "check_ops", "op_cost", "pool_bn_relu_cost",
           "sep_conv_cost", "DARTS_OP_NAMES", "FactorizedReduce", "ReLUConvBN", "darts_op"]
