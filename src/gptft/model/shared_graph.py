"""One compiled graph for every block of the same structure.

GPT's blocks are one graph repeated with different weights, and compiling the gradient graph of twelve
copies is most of a first step (docs/performance-cpu.md#compile-time). MindSpore's parser reads a cell's
`cell_init_args`, when the cell has one, as the key of its graph: cells whose keys are equal and start
with `lazy_inline_` are parsed and analysed once, as a sub-graph whose weights are inputs, and with
`no_inline` false that sub-graph is inlined again before the backend, which CPU needs. This is the
mechanism behind `mindspore.lazy_inline(policy="front")`; its decorator fixes the key when the cell is
built, from the arguments of `__init__`, so a block changed later (adapters on some layers, some layers
frozen) would share a graph that is not its own. `SharedGraphCell` works the key out each time the parser
reads it, from everything of the cell that can change its graph.
"""

import types
import zlib

from mindspore import Parameter, Tensor, nn
from mindspore.ops import Primitive


def _describe(value):
    """What an attribute contributes to a graph: constants and constant tensors by value (parameters are
    inputs of the shared graph, not constants), operators by their attributes, functions by name."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype), zlib.crc32(value.asnumpy().tobytes()))
    if isinstance(value, Primitive):
        return ("primitive", value.name, sorted((k, str(v)) for k, v in value.attrs.items()))
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return ("function", value.__module__, value.__qualname__)
    if isinstance(value, (tuple, list)):
        return tuple(_describe(v) for v in value)
    # Anything else could carry values the graph folds in: make the key unique rather than guess.
    return ("object", id(value))


def structure_key(cell: nn.Cell) -> str:
    """A string that two cells share only if they compile to the same graph: for the cell and each cell
    inside it, its path, class, training flag and attributes; for each parameter its path, shape, dtype and
    whether it is trained."""
    parts = []
    for path, sub in cell.cells_and_names():
        kind = type(sub)
        attributes = sorted((name, _describe(value)) for name, value in vars(sub).items()
                            if not name.startswith("_") and not isinstance(value, (nn.Cell, Parameter)))
        parts.append((path, kind.__module__, kind.__qualname__, sub.training, attributes))
    for path, param in cell.parameters_and_names():
        parts.append((path, tuple(param.shape), str(param.dtype), param.requires_grad))
    return repr(parts)


class SharedGraphCell(nn.Cell):
    """A cell compiled once for all the cells of the same structure in a graph (see the module docstring)."""

    no_inline = False  # inline the shared graph before the backend: CPU cannot run it as a sub-graph

    @property
    def cell_init_args(self) -> str:
        return "lazy_inline_gptft:" + structure_key(self)
