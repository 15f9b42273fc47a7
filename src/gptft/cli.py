"""The `gptft` command line: train, eval, predict, pretrain, demo, doctor.

A problem with the user's input (config, data, model files, environment) prints one line naming it and
exits with code 2; `--debug` shows the full traceback instead.
"""

import argparse
import json
import os
import sys
from pathlib import Path

# MindSpore reads its log level once, at import; below errors its warnings drown the output.
os.environ.setdefault("GLOG_v", "3")

EXIT_BAD_INPUT = 2


def _split_overrides(extra: list[str]) -> list[str]:
    overrides = []
    for item in extra:
        if not item.startswith("--") or "=" not in item:
            from .errors import ConfigError

            raise ConfigError(f"unrecognised argument {item!r}; overrides look like --section.key=value "
                              "(or --key=value for a top-level key such as --device=gpu)")
        overrides.append(item[2:])
    return overrides


def _load_run_config(cls, args, extra):
    from .runconfig import load

    overrides = _split_overrides(extra)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    return load(cls, args.config, overrides)


def _train(args, extra) -> int:
    from .run import train
    from .runconfig import RunConfig

    config = _load_run_config(RunConfig, args, extra)
    result = train(config, resume=args.resume)
    _report(result, config.output_dir)
    return 0


def _report(result: dict, output_dir) -> None:
    if result.get("model_dir") is None:
        return  # a data-parallel worker other than rank 0: rank 0 reports
    state = result["state"]
    if state.get("best_step") is not None:
        print(f"best validation {state.get('best_metric')}: {state['best_value']:.4f} at step {state['best_step']}")
    if result.get("test"):
        print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in result["test"].items()))
    print(f"outputs in {output_dir}")


def _pretrain(args, extra) -> int:
    from .pretrain import PretrainConfig, pretrain

    config = _load_run_config(PretrainConfig, args, extra)
    result = pretrain(config, resume=args.resume)
    print(f"validation loss {result['validation']['val_loss']:.4f} (perplexity {result['validation']['perplexity']:.1f}); "
          f"model for `gptft train` in {result['model_dir']}")
    return 0


def _eval(args, extra) -> int:
    from .run import evaluate_model
    from .runconfig import RunConfig, load

    run_dir = Path(args.run_dir)
    config = load(RunConfig, run_dir / "config.yaml", _split_overrides(extra))
    split = {"test": config.data.test, "validation": config.data.validation}.get(args.split, args.split)
    if not split:
        from .errors import ConfigError

        raise ConfigError(f"the run's data section names no {args.split} split; pass --split FILE")
    # The run's own evaluation batch and graph choice: what fitted in memory while training fits here.
    metrics = evaluate_model(args.model or run_dir / "model", config.data, split, args.output,
                             config.eval_batch_size(), dynamic_length=config.train.dynamic_length)
    print(json.dumps({"split": args.split, **metrics}))
    return 0


def _read_rows(path: Path) -> list[dict]:
    from .errors import DataError

    if not path.is_file():
        raise DataError(f"input file {path} does not exist")
    if path.suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as error:
                    raise DataError(f"{path}:{number}: not a JSON object ({error})") from None
        return rows
    return [{"text": line} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _predict(args, extra) -> int:
    from .errors import ConfigError
    from .run import predict

    _split_overrides(extra)
    if bool(args.text) == bool(args.input):
        raise ConfigError("give texts with --text (repeatable) or a file with --input, not both")
    rows = [{"text": t} for t in args.text] if args.text else _read_rows(Path(args.input))
    records = predict(args.model_dir, rows, args.output, args.batch_size, args.dynamic_length)
    if not args.output:
        for record in records:
            print(json.dumps(record))
    return 0


def _demo(args, extra) -> int:
    from .demo import run_demo

    _split_overrides(extra)
    result = run_demo(args.output_dir, from_scratch=args.from_scratch, seed=args.seed)
    print(f"test accuracy {result['test']['accuracy']:.4f} ({'from scratch' if args.from_scratch else 'pre-trained'}); "
          f"outputs in {args.output_dir}")
    return 0


def _doctor(args, extra) -> int:
    from .doctor import main as doctor_main

    _split_overrides(extra)
    return doctor_main(check_hub=not args.no_hub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gptft", description="Fine-tune GPT models on MindSpore.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="fine-tune on a task (YAML config)")
    train.add_argument("config")
    train.add_argument("--output-dir")
    train.add_argument("--resume", action="store_true", help="continue the run in the output folder")
    train.set_defaults(run=_train)

    pretrain = commands.add_parser("pretrain", help="language-model pre-training on unlabeled text (YAML config)")
    pretrain.add_argument("config")
    pretrain.add_argument("--output-dir")
    pretrain.add_argument("--resume", action="store_true")
    pretrain.set_defaults(run=_pretrain)

    evaluate = commands.add_parser("eval", help="metrics of a trained run on its test (or another) split")
    evaluate.add_argument("run_dir", help="a `gptft train` output folder")
    evaluate.add_argument("--split", default="test", help="test, validation, or a data file")
    evaluate.add_argument("--model", help="model folder (default RUN_DIR/model)")
    evaluate.add_argument("--output", help="write predictions here (JSONL)")
    evaluate.set_defaults(run=_eval)

    predict = commands.add_parser("predict", help="predict labels for texts or a file")
    predict.add_argument("model_dir", help="an exported model folder (RUN_DIR/model)")
    predict.add_argument("--text", action="append", default=[], help="a text to classify (repeatable)")
    predict.add_argument("--input", help="a .txt file (one text per line) or .jsonl file (the task's fields)")
    predict.add_argument("--output", help="write JSONL here instead of standard output")
    predict.add_argument("--batch-size", type=int, default=16, help="texts per forward pass (default 16)")
    predict.add_argument("--dynamic-length", action="store_true",
                         help="one compiled graph for all text lengths: less memory for long texts, slower")
    predict.set_defaults(run=_predict)

    demo = commands.add_parser("demo", help="offline demo: pre-train a small GPT, fine-tune it on movie reviews")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--from-scratch", action="store_true", help="skip pre-training (to see what it adds)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)

    doctor = commands.add_parser("doctor", help="check this environment and say how to fix what is wrong")
    doctor.add_argument("--no-hub", action="store_true", help="skip the network check of the hub")
    doctor.set_defaults(run=_doctor)
    return parser


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    from .errors import GptftError

    try:
        return args.run(args, extra)
    except GptftError as error:
        if args.debug:
            raise
        print(f"gptft: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("gptft: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
