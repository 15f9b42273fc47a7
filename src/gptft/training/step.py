"""The compiled training step: gradients, their all-reduce, accumulation, clipping and the AdamW update.

It knows nothing about GPT: it takes a loss cell and an `AdamW`. The loss cell returns a tuple of scalars
named by its `loss_names` attribute, the first being the one minimised; the step reports each of them and
the gradient norm. A loss cell may also define `extra_inputs(batch, advance=True)`: arrays made on the
host for each call and appended to the batch (gptft's losses pass their dropout masks this way).

One step is a few compiled graphs: the gradient graph (forward and backward of the loss cell, with no
in-place updates of its own), then the optimizer's small update graphs. Keeping the parameter updates out
of the big graph keeps its compile time and memory down (docs/performance-cpu.md#compile-time). With
gradient accumulation over k micro-batches the gradient graph also takes the running sum of the earlier
micro-batches' gradients and returns the new one, so the update equals one step on the k micro-batches
together. In GRAPH_MODE each graph is built once per input shape, or once for all shapes after
`compile_for_any_length`.
"""

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from ..model.layers import named_parameters
from .device import release_freed_memory
from .optim import AdamW


def any_shape(arrays) -> list[Tensor]:
    """Input placeholders with every dimension dynamic, matching `arrays` in rank and dtype.

    `cell.set_inputs(*any_shape(example))` makes GRAPH_MODE build one graph for inputs of any shape
    instead of one per shape (see `TrainConfig.dynamic_length` for the trade).
    """
    placeholders = []
    for a in arrays:
        a = np.asarray(a)
        placeholders.append(Tensor(shape=[None] * a.ndim, dtype=Tensor(np.zeros((), a.dtype)).dtype))
    return placeholders


class _Gradients(nn.Cell):
    """`(*batch, *running) -> (loss parts, running + gradients[, finite])`.

    Gradients are all-reduced (mean) across data-parallel workers. `running` is empty unless the step
    accumulates. `finite`, whether every gradient is finite, comes only with float16 loss scaling.
    """

    def __init__(self, loss_cell: nn.Cell, params, world_size: int, accumulate: int, loss_scaler=None):
        super().__init__()
        self.loss_cell = loss_cell
        self.grad_fn = ms.value_and_grad(self._scaled_loss, None, params, has_aux=True)
        self.reducer = nn.DistributedGradReducer(params, mean=True, degree=world_size) if world_size > 1 else None
        self.all_reduce = ops.AllReduce() if world_size > 1 else None
        self.world_size = world_size
        self.accumulate = accumulate
        self.num_params = len(params)
        self.loss_scaler = loss_scaler

    def _scaled_loss(self, *batch):
        parts = self.loss_cell(*batch)
        if self.loss_scaler is None:
            return parts
        return (self.loss_scaler.scale(parts[0]),) + tuple(parts[1:])

    def construct(self, *inputs):
        if self.accumulate > 1:
            batch, running = inputs[:-self.num_params], inputs[-self.num_params:]
        else:
            batch, running = inputs, ()
        parts, grads = self.grad_fn(*batch)
        if self.loss_scaler is not None:
            grads = self.loss_scaler.unscale(grads)
            parts = (self.loss_scaler.unscale(parts[0]),) + tuple(parts[1:])
        if self.reducer is not None:
            grads = self.reducer(grads)
            # Report the losses over the whole global batch, not this worker's share of it.
            parts = tuple(self.all_reduce(p) / self.world_size for p in parts)
        if self.accumulate > 1:
            grads = tuple(r + g for r, g in zip(running, grads))
        if self.loss_scaler is None:
            return parts, grads
        return parts, grads, ms.amp.all_finite(grads)


class _SquaredSum(nn.Cell):
    """The sum of squares of some tensors, one small graph (the gradient norm, an update segment at a time,
    so the model's repeated layers share one graph as their updates do).

    A chain of two-input adds over flattened tensors: one `AddN` of every tensor's sum compiled about
    seven times slower, and 2-D reductions ran three times slower (docs/performance-cpu.md#compile-time).
    """

    def construct(self, *tensors):
        total = ops.zeros((), ms.float32)
        for t in tensors:
            flat = t.reshape(-1)
            total = total + ops.reduce_sum(flat * flat)
        return total


class TrainStep:
    """One optimizer step on its micro-batches: `step.train_on(micro_batches, step_number, lr)`.

    The learning rate and Adam's bias correction are computed on the host for each step, which keeps the
    schedule out of the graphs and a step a pure function of its inputs and the parameters.

    Args:
        loss_cell: returns a tuple of scalars named by its `loss_names`; the gradient is that of the first.
        optimizer: the `AdamW` over the parameters to train.
        max_grad_norm: clip gradients to this global norm (0 disables clipping).
        accumulate: micro-batches per optimizer step.
        world_size: data-parallel workers whose gradients are averaged.
        loss_scaler: a `mindspore.amp.DynamicLossScaler` for float16 training, else None.
    """

    def __init__(self, loss_cell: nn.Cell, optimizer: AdamW, max_grad_norm: float = 1.0, accumulate: int = 1,
                 world_size: int = 1, loss_scaler=None):
        self.loss_cell = loss_cell
        self.loss_names = tuple(loss_cell.loss_names)
        self.draws_extra_inputs = hasattr(loss_cell, "extra_inputs")
        self.optimizer = optimizer
        self.max_grad_norm = float(max_grad_norm)
        self.accumulate = int(accumulate)
        self.loss_scaler = loss_scaler
        self.gradients = _Gradients(loss_cell, optimizer.params, world_size, self.accumulate, loss_scaler)
        # One cell for every segment: it compiles a graph per set of gradient shapes, so the layers share one.
        self.squared_sum = _SquaredSum()
        # The running sum starts from these zeros (never written: the graph returns new tensors).
        self.zeros = [Tensor(np.zeros(p.shape, np.float32)) for p in optimizer.params] if accumulate > 1 else []

    def set_train(self, mode: bool = True) -> None:
        self.loss_cell.set_train(mode)
        self.gradients.set_train(mode)

    def weights(self) -> dict[str, Parameter]:
        """What the step changes in the loss cell, by structural name: the weights it trains and the dropout
        state. Frozen weights (the backbone under LoRA) are left out: a run reloads them from their source."""
        weights = named_parameters(self.loss_cell, weights_only=True)
        return {name: p for name, p in named_parameters(self.loss_cell).items()
                if p.requires_grad or name not in weights}

    def checkpoint_state(self) -> dict[str, Parameter]:
        """Everything a checkpoint must hold to resume exactly: `weights()`, their Adam moments and the loss scale."""
        state = self.weights()
        names = {id(p): name for name, p in state.items()}
        for param, m, v in zip(self.optimizer.params, self.optimizer.m, self.optimizer.v):
            state[f"optimizer.m.{names[id(param)]}"] = m
            state[f"optimizer.v.{names[id(param)]}"] = v
        if self.loss_scaler is not None:
            state["loss_scale.value"] = self.loss_scaler.scale_value
            state["loss_scale.counter"] = self.loss_scaler.counter
        return state

    def inputs(self, batch, advance: bool = True) -> list[Tensor]:
        """One micro-batch as the gradient graph's tensors: the batch's arrays and the loss cell's extras."""
        extra = self.loss_cell.extra_inputs(batch, advance) if self.draws_extra_inputs else ()
        return [Tensor(a) for a in (*batch, *extra)]

    def compile_for_any_length(self, batch) -> None:
        """Build one gradient graph for batches of every shape like `batch` (one micro-batch of arrays),
        instead of one per batch length (see `TrainConfig.dynamic_length`)."""
        example = any_shape([t.asnumpy() for t in self.inputs(batch, advance=False)])
        running = [Tensor(shape=z.shape, dtype=z.dtype) for z in self.zeros]
        self.gradients.set_inputs(*example, *running)

    def _squared_sum(self, grads) -> float:
        """The sum of the squares of every element of `grads` (in `params` order)."""
        return sum(float(self.squared_sum(*(grads[i] for i in segment))) for segment in self.optimizer.segments)

    def compiled_graphs(self) -> int:
        """How many graphs the step has compiled so far (the gradient graph per shape, and the updates)."""
        return (len(self.gradients.compile_cache) + sum(self.optimizer.compile_cache_sizes())
                + len(self.squared_sum.compile_cache))

    def train_on(self, micro_batches, step: int, lr: float) -> tuple[dict, float]:
        """Optimizer step number `step` (1-based) at learning rate `lr` on its `accumulate` micro-batches.

        Returns `({loss name: mean over the micro-batches}, gradient norm)`.
        """
        if len(micro_batches) != self.accumulate:
            raise ValueError(f"step {step} got {len(micro_batches)} micro-batches, the step accumulates {self.accumulate}")
        compiled = self.compiled_graphs()
        running, parts = self.zeros, []
        for batch in micro_batches:
            losses, running, *finite = self.gradients(*self.inputs(batch), *running)
            parts.append([float(x) for x in losses])
        norm = float(np.sqrt(self._squared_sum(running))) / self.accumulate
        if self.loss_scaler is not None:
            self.loss_scaler.adjust(finite[0])
            if not bool(finite[0]):
                return dict(zip(self.loss_names, np.mean(parts, axis=0).tolist())), norm
        scale = None  # one set of update graphs per run: scaled whenever clipping or accumulation may scale
        if self.max_grad_norm > 0 or self.accumulate > 1:
            clip = self.max_grad_norm / max(norm, self.max_grad_norm) if self.max_grad_norm > 0 else 1.0
            scale = Tensor(clip / self.accumulate, ms.float32)
        self.optimizer.apply(running, self.optimizer.scalars(step, lr), scale)
        if self.compiled_graphs() != compiled:
            release_freed_memory()  # what compiling the new graphs left behind
        return dict(zip(self.loss_names, np.mean(parts, axis=0).tolist())), norm
