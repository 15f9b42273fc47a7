"""`gptft zeroshot`: a pre-trained language model on a task with no training (the paper's Section 5).

config -> tokenizer and model -> validation and test splits -> scores per label or answer -> metrics and
predictions, written as `gptft train` writes them.

    >>> from gptft import load_config
    >>> from gptft.commands.schema import ZeroShotConfig
    >>> metrics = zeroshot(load_config(ZeroShotConfig, "sst2-zeroshot.yaml"))   # {"validation": {...}, "test": ...}
"""

import numpy as np

from ..data.loading import load_task_splits
from ..errors import ConfigError
from ..model.tokenizer import Tokenizer
from ..tasks.evaluation import write_predictions
from ..tasks.metrics import compute_metrics
from ..tasks.zeroshot import zero_shot_scores
from ..training import device
from ..training.runlog import RunLog
from . import run_folder
from .schema import ZeroShotConfig


def zeroshot(config: ZeroShotConfig) -> dict:
    """Metrics of the untrained language model on the validation and test splits (`{split: metrics}`);
    writes `metrics.jsonl`, `predictions-<split>.jsonl` and `config.yaml` under `config.output_dir`."""
    task, shot = config.task, config.zeroshot
    device.setup(config.device, config.mode, "float32")
    with run_folder.claimed(config.output_dir, config, resume=False) as output_dir:
        if (output_dir / "metrics.jsonl").exists():
            raise ConfigError(f"{output_dir} already holds results (metrics.jsonl); choose another --output-dir")
        tokenizer = Tokenizer.from_pretrained(config.tokenizer_source)
        model = config.model.load(tokenizer, config.train.seed)
        run_folder.start(output_dir, config, resume=False)
        splits = load_task_splits(config.data, task, config.train.seed)
        log, results = RunLog(output_dir / "metrics.jsonl"), {}
        for name in ("validation", "test"):
            examples = splits.get(name)
            if examples is None:
                continue
            scores = zero_shot_scores(model, tokenizer, task, examples.fields, shot.template, shot.verbalizers,
                                      shot.answer_prefix, config.eval_batch_size())
            predictions = task.predict(scores)
            results[name] = compute_metrics(task.metric_names, predictions, np.asarray(examples.labels))
            log.write({"step": 0, "split": name, **results[name]})
            write_predictions(output_dir / f"predictions-{name}.jsonl", task, predictions, list(scores), examples.ids)
            print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in results[name].items()))
    return results
