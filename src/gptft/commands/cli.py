"""The `gptft` command line: train, eval, predict, generate, zeroshot, pretrain, demo, doctor, schema.

A problem with the user's input (config, data, model files, environment) prints one line naming it and
exits with code 2; `--debug` shows the full traceback instead. A training run stopped by SIGTERM or SIGINT
saves a checkpoint and exits with 143 or 130.
"""

import argparse
import gc
import importlib
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
            from ..errors import ConfigError

            raise ConfigError(f"unrecognised argument {item!r}; overrides look like --section.key=value "
                              "(or --key=value for a top-level key such as --device=gpu)")
        overrides.append(item[2:])
    return overrides


def _no_overrides(command: str, extra: list[str]) -> None:
    """Commands without a config take no overrides: one given is refused rather than silently ignored."""
    if extra:
        from ..errors import ConfigError

        _split_overrides(extra)  # a malformed argument gets that message
        raise ConfigError(f"unrecognised argument {extra[0]!r}: `gptft {command}` reads no config, so it takes no "
                          "--section.key=value overrides")


def _load_run_config(cls, args, extra):
    from .configfile import load_config

    overrides = _split_overrides(extra)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    return load_config(cls, args.config, overrides)


def _train(args, extra) -> int:
    from .finetune import train
    from .schema import RunConfig

    config = _load_run_config(RunConfig, args, extra)
    result = train(config, resume=args.resume)
    if result.model_dir is None:
        return 0  # a data-parallel worker other than rank 0: rank 0 reports
    progress = result.progress
    if progress.best_step is not None:
        print(f"best validation {progress.best_metric}: {progress.best_value:.4f} at step {progress.best_step}")
    if result.test:
        print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in result.test.items()))
    print(f"outputs in {config.output_dir}")
    return 0


def _pretrain(args, extra) -> int:
    from .pretrain import pretrain
    from .schema import PretrainConfig

    config = _load_run_config(PretrainConfig, args, extra)
    result = pretrain(config, resume=args.resume)
    print(f"validation loss {result.validation['val_loss']:.4f} (perplexity {result.validation['perplexity']:.1f}); "
          f"model for `gptft train` in {result.model_dir}")
    return 0


def _eval(args, extra) -> int:
    from ..errors import ConfigError
    from .configfile import load_config
    from .inference import evaluate_folder
    from .run_folder import CONFIG_FILE
    from .schema import RunConfig

    run_dir = Path(args.run_dir)
    config = load_config(RunConfig, run_dir / CONFIG_FILE, _split_overrides(extra))
    split = {"test": config.data.test, "validation": config.data.validation}.get(args.split, args.split)
    if not split:
        raise ConfigError(f"the run's data section names no {args.split} split; pass --split FILE")
    # The run's own evaluation batch and graph choice: what fitted in memory while training fits here.
    metrics = evaluate_folder(args.model or run_dir / "model", config.data, split, args.output,
                              config.eval_batch_size(), dynamic_length=config.train.dynamic_length)
    print(json.dumps({"split": args.split, **metrics}))
    return 0


def _read_rows(path: Path) -> list[dict]:
    from ..errors import DataError

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
    from ..errors import ConfigError
    from .inference import predict

    _no_overrides("predict", extra)
    if bool(args.text) == bool(args.input):
        raise ConfigError("give texts with --text (repeatable) or a file with --input, not both")
    rows = [{"text": t} for t in args.text] if args.text else _read_rows(Path(args.input))
    records = predict(args.model_dir, rows, args.output, args.batch_size, args.dynamic_length)
    if not args.output:
        for record in records:
            print(json.dumps(record))
    return 0


def _generate(args, extra) -> int:
    from .generate import generate_text

    _no_overrides("generate", extra)
    completions = generate_text(args.model_dir, args.prompt, args.max_new_tokens, args.temperature, args.top_k,
                                args.top_p, args.seed, args.stop, args.device)
    for prompt, completion in zip(args.prompt, completions):
        print(json.dumps({"prompt": prompt, "completion": completion}) if args.jsonl else prompt + completion)
    return 0


def _zeroshot(args, extra) -> int:
    from .schema import ZeroShotConfig
    from .zeroshot import zeroshot

    config = _load_run_config(ZeroShotConfig, args, extra)
    zeroshot(config)
    print(f"outputs in {config.output_dir}")
    return 0


def _export(args, extra) -> int:
    from .export import export

    _no_overrides("export", extra)
    output = export(args.run_dir, args.format, args.adapter_only, args.output)
    print(f"exported to {output}")
    return 0


def _demo(args, extra) -> int:
    from .demo import run_demo

    _no_overrides("demo", extra)
    result = run_demo(args.output_dir, from_scratch=args.from_scratch, seed=args.seed, resume=args.resume)
    print(f"test accuracy {result.test['accuracy']:.4f} ({'from scratch' if args.from_scratch else 'pre-trained'}); "
          f"outputs in {args.output_dir}")
    return 0


def _doctor(args, extra) -> int:
    from .doctor import main as doctor_main

    _no_overrides("doctor", extra)
    return doctor_main(check_hub=not args.no_hub, clear_compile_cache=args.clear_compile_cache)


def _schema(args, extra) -> int:
    from .schema import reference_yaml

    _no_overrides("schema", extra)
    print(reference_yaml(args.command_name), end="")
    return 0


OVERRIDES_HELP = """\
Any setting of the config can be changed on the command line as --section.key=value (the value is read
as YAML; top-level keys as --key=value), applied after the file. `gptft schema {command}` lists every key.

example:
  gptft {command} {example} --train.epochs=1 --train.lr=3e-5 --device=gpu
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gptft", description="Fine-tune GPT models on MindSpore.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, run, example: str = "", compiles: bool = True) -> argparse.ArgumentParser:
        epilog = OVERRIDES_HELP.format(command=name, example=example) if example else None
        sub = commands.add_parser(name, help=help, description=help, epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=run, compiles=compiles)
        return sub

    train = command("train", "fine-tune on a task (YAML config)", _train, "configs/sst2.yaml")
    train.add_argument("config", help="a YAML run config (configs/*.yaml; `gptft schema train` shows every key)")
    train.add_argument("--output-dir", help="where the run writes (default: the config's output_dir)")
    train.add_argument("--resume", action="store_true", help="continue the run in the output folder")

    pretrain = command("pretrain", "language-model pre-training on unlabeled text (YAML config)", _pretrain,
                       "pretrain.yaml")
    pretrain.add_argument("config", help="a YAML pre-training config (`gptft schema pretrain` shows every key)")
    pretrain.add_argument("--output-dir", help="where the run writes (default: the config's output_dir)")
    pretrain.add_argument("--resume", action="store_true", help="continue the run in the output folder")

    evaluate = command("eval", "metrics of a trained run on its test (or another) split", _eval, "runs/sst2")
    evaluate.add_argument("run_dir", help="a `gptft train` output folder")
    evaluate.add_argument("--split", default="test", help="test, validation, or a data file")
    evaluate.add_argument("--model", help="model folder (default RUN_DIR/model)")
    evaluate.add_argument("--output", help="write predictions here (JSONL)")

    predict = command("predict", "predict labels for texts or a file", _predict)
    predict.add_argument("model_dir", help="an exported model folder (RUN_DIR/model)")
    predict.add_argument("--text", action="append", default=[], help="a text to classify (repeatable)")
    predict.add_argument("--input", help="a .txt file (one text per line) or .jsonl file (the task's fields)")
    predict.add_argument("--output", help="write JSONL here instead of standard output")
    predict.add_argument("--batch-size", type=int, default=16, help="texts per forward pass (default 16)")
    predict.add_argument("--dynamic-length", action="store_true",
                         help="one compiled graph for all text lengths: less memory for long texts, slower")

    generate = command("generate", "continue prompts with a GPT (a pre-training output or released weights)",
                       _generate)
    generate.add_argument("model_dir", help="a model folder: a pre-training run's model/, a Hugging Face GPT "
                                            "folder, or a fine-tuned run's model/")
    generate.add_argument("--prompt", action="append", required=True, help="a prompt (repeatable: one batch)")
    generate.add_argument("--max-new-tokens", type=int, default=40, help="tokens to add at most (default 40)")
    generate.add_argument("--temperature", type=float, default=1.0, help="0 is greedy (default 1.0)")
    generate.add_argument("--top-k", type=int, default=0, help="sample from the k most likely tokens (0: all)")
    generate.add_argument("--top-p", type=float, default=1.0,
                          help="sample from the smallest set of tokens whose probability reaches p (default 1)")
    generate.add_argument("--seed", type=int, default=0, help="the same seed gives the same text")
    generate.add_argument("--stop", action="append", default=[], help="cut each completion before this text "
                                                                     "(repeatable)")
    generate.add_argument("--device", default="cpu", help="cpu, gpu or ascend (default cpu)")
    generate.add_argument("--jsonl", action="store_true", help="print {prompt, completion} JSON lines")

    shot = command("zeroshot", "score a task with the pre-trained language model alone, no training",
                   _zeroshot, "sst2-zeroshot.yaml")
    shot.add_argument("config", help="a YAML config: a `gptft train` config plus a zeroshot: section "
                                     "(`gptft schema zeroshot` shows every key)")
    shot.add_argument("--output-dir", help="where the results go (default: the config's output_dir)")

    exporting = command("export", "write a run's model for serving (MindIR) or its LoRA adapters alone", _export)
    exporting.add_argument("run_dir", help="a `gptft train` output folder (or its model/ folder)")
    exporting.add_argument("--format", default="hf", choices=["hf", "mindir"],
                           help="hf: safetensors in the Hugging Face layout (default); mindir: the inference graph "
                                "for MindSpore serving and MindSpore Lite")
    exporting.add_argument("--adapter-only", action="store_true",
                           help="only the LoRA adapters, head, task and tokenizer (the base model is named, not copied)")
    exporting.add_argument("--output", help="the folder to write (default RUN_DIR/export, /mindir or /adapter); "
                                            "must not exist or be empty")

    demo = command("demo", "offline demo: pre-train a small GPT, fine-tune it on movie reviews", _demo,
                   compiles=False)  # its parent process loads MindSpore only after pre-training
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--from-scratch", action="store_true", help="skip pre-training (to see what it adds)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--resume", action="store_true", help="continue a demo that a signal stopped")

    doctor = command("doctor", "check this environment and say how to fix what is wrong", _doctor, compiles=False)
    doctor.add_argument("--no-hub", action="store_true", help="skip the network check of the hub")
    doctor.add_argument("--clear-compile-cache", action="store_true",
                        help="delete every cached compiled graph first (GPTFT_COMPILE_CACHE=off turns caching off)")

    schema = command("schema", "print every config key with an example value and what it means", _schema,
                     compiles=False)
    schema.add_argument("command_name", choices=["train", "zeroshot", "pretrain"], metavar="{train,zeroshot,pretrain}",
                        help="the command whose config to describe")
    return parser


def _freeze_imports() -> None:
    """Load MindSpore, then exempt the objects that exist from garbage collection (once per process).

    MindSpore collects garbage before it compiles each graph, and a full collection scans every object in
    the process, most of them made by MindSpore's import and alive until the process ends
    (docs/performance-cpu.md#compile-time). Frozen, they are no longer scanned; what the command makes
    afterwards still is.
    """
    if gc.get_freeze_count():
        return  # frozen already (main called again in one process)
    importlib.import_module("mindspore")
    gc.collect()
    gc.freeze()


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if args.compiles:
        _freeze_imports()
    from ..errors import GptftError
    from ..training.interrupt import TrainingInterrupted
    from .stage import StageFailed

    try:
        return args.run(args, extra)
    except StageFailed as failed:
        return failed.exit_code  # the stage's own process printed why
    except TrainingInterrupted as stopped:
        print(f"gptft: {stopped}", file=sys.stderr)
        return stopped.exit_code
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
