"""The `gptft` command line."""

import argparse
import os
import sys
import time

# MindSpore reads its log level once, at import; below errors its warnings drown the output.
os.environ.setdefault("GLOG_v", "3")


def _smoke(args) -> int:
    import mindspore as ms
    import numpy as np

    from . import GPT, GPTConfig

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    config = GPTConfig.preset("tiny", layout=args.layout)
    model = GPT(config)
    ids = ms.Tensor(np.random.default_rng(0).integers(0, config.vocab_size, (2, 16)).astype(np.int32))

    def lm_loss(x):
        logits = model.lm_logits(model(x[:, :-1]))
        return ms.ops.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))

    step = ms.jit(ms.value_and_grad(lm_loss, None, model.trainable_params()))
    start = time.perf_counter()
    loss, grads = step(ids)
    print(f"compiled forward+backward of a {config.n_layer}-layer {args.layout} GPT in "
          f"{time.perf_counter() - start:.1f} s; LM loss {float(loss):.3f} (ln 99 = {np.log(99):.3f}), "
          f"{len(grads)} gradients")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gptft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    smoke = commands.add_parser("smoke", help="compile and run a tiny GPT's training pass on the CPU")
    smoke.add_argument("--layout", choices=["post_ln", "pre_ln"], default="post_ln")
    smoke.set_defaults(run=_smoke)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
