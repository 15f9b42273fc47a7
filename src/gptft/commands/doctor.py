"""`gptft doctor`: is this environment one gptft works in, and if not, what fixes it.

Checks, in order: the Python version; the installed versions of the packages gptft depends on against
the ranges it is tested with (read from package metadata, so a broken package cannot stop the check);
that MindSpore and `datasets` import; which devices MindSpore can use; a tiny compiled training step;
whether mindnlp is installed (it must not be imported beside gptft); where the compile cache is and how
much it holds; and whether the model hub (or the `HF_ENDPOINT` mirror) answers. Prints one line per check and, for each problem, the command that fixes
it. Exit code 0 when the environment is sound, 1 otherwise. An unreachable hub is a warning, not a
failure: local folders still work.
"""

import importlib.metadata
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass

# (package, lowest tested, first untested) -- the ranges in pyproject.toml; a test keeps them equal.
TESTED = {
    "mindspore": ("2.7.0", "2.11"),
    "numpy": ("1.25", "2"),
    "pyarrow": ("15", "26"),
    "pandas": (None, "3.1"),
    "datasets": ("3.0", None),
    "tokenizers": ("0.19", None),
    "safetensors": ("0.4.3", None),
    "huggingface_hub": ("0.23", None),
}
WHY = {
    "numpy": "MindSpore 2.7-2.10 are built against NumPy 1.x; with NumPy 2 GeneratorDataset fails "
             "('Unable to avoid copy')",
    "pyarrow": "pyarrow 26 refuses to import beside NumPy 1.x, which breaks `import datasets` while `pip check` "
               "stays clean",
    "pandas": "pandas 3.1 and later need NumPy 2",
}
PYTHON_TESTED = (3, 11)
MINDNLP = ("mindnlp is installed. Importing it replaces methods of mindspore.Tensor for the whole process, "
           "after which plain MindSpore code (gptft's training step among it) fails with errors such as "
           "'Tensor must have device'. gptft never imports it; do not import it in the same script")


@dataclass
class Check:
    status: str  # "ok", "warn" or "FAIL"
    name: str
    detail: str
    fix: str = ""


def installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _key(version: str) -> tuple:
    parts = []
    for piece in version.replace("+", ".").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():
            break
    return tuple(parts)


def in_range(version: str, low: str | None, high: str | None) -> bool:
    return (low is None or _key(version) >= _key(low)) and (high is None or _key(version) < _key(high))


def _spec(low, high) -> str:
    return ",".join(part for part in (f">={low}" if low else "", f"<{high}" if high else "") if part)


def check_python() -> Check:
    version = sys.version_info[:2]
    text = f"Python {sys.version.split()[0]}"
    if version == PYTHON_TESTED:
        return Check("ok", "python", text)
    return Check("warn", "python", f"{text}; gptft is tested on Python 3.11",
                 "python3.11 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e .")


def check_packages() -> list[Check]:
    checks = []
    for package, (low, high) in TESTED.items():
        version = installed_version(package)
        spec = _spec(low, high)
        if version is None:
            checks.append(Check("FAIL", package, "not installed", f"pip install '{package}{spec}'"))
        elif not in_range(version, low, high):
            reason = f" ({WHY[package]})" if package in WHY else ""
            checks.append(Check("FAIL", package, f"{version} is outside the tested range {spec}{reason}",
                                f"pip install '{package}{spec}'"))
        else:
            checks.append(Check("ok", package, f"{version} (tested {spec})"))
    return checks


def _run_python(code: str, timeout: int = 300) -> tuple[bool, str]:
    """Run code in a fresh interpreter, so a crash or a half-broken import cannot take the doctor down."""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, GLOG_v="3"))
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return done.returncode == 0, (lines[-1] if lines else f"exit code {done.returncode}")


def check_imports() -> list[Check]:
    checks = []
    for module, fix in (("mindspore", "pip install -c constraints.txt 'mindspore>=2.7.0,<2.11'"),
                        ("datasets", "pip install 'pyarrow<26' 'numpy<2'")):
        ok, message = _run_python(f"import {module}; print({module}.__version__)")
        checks.append(Check("ok", f"import {module}", f"imports ({message})") if ok else
                      Check("FAIL", f"import {module}", f"fails: {message}", fix))
    return checks


def check_devices() -> Check:
    ok, message = _run_python("import mindspore as ms; print(','.join(d for d in ('CPU', 'GPU', 'Ascend') "
                              "if ms.hal.is_available(d)))")
    if not ok:
        return Check("FAIL", "devices", f"cannot ask MindSpore: {message}")
    return Check("ok", "devices", f"MindSpore can use: {message or 'none'} (device: cpu, gpu or ascend in configs)")


def tiny_training_step() -> str:
    """Compile and run two steps of a tiny task model on the CPU; the doctor runs it in a child process."""
    import time

    import mindspore as ms
    import numpy as np

    from ..model.config import GPTConfig
    from ..model.gpt import GPT
    from ..tasks.heads import ClassificationHead
    from ..tasks.losses import TaskLoss, cross_entropy
    from ..tasks.task_model import TaskModel
    from ..training.optim import AdamW
    from ..training.step import TrainStep

    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    loss = TaskLoss(TaskModel(GPT(GPTConfig.preset("tiny")), ClassificationHead(32, 2)), cross_entropy, 0.5)
    optimizer = AdamW(loss.trainable_params())
    step = TrainStep(loss, optimizer)
    step.set_train(True)
    rng = np.random.default_rng(0)
    batch = (rng.integers(0, 99, (2, 1, 8)).astype(np.int32), np.full((2, 1), 7, np.int32),
             np.ones((2, 1, 8), np.float32), np.array([0, 1], np.int32))
    start = time.perf_counter()
    losses = [step.train_on([batch], t, 1e-3)[0]["loss"] for t in (1, 2)]
    return f"compiled and ran a tiny training step in {time.perf_counter() - start:.1f} s (loss {losses[0]:.3f} -> {losses[1]:.3f})"


def check_compiled_step() -> Check:
    ok, message = _run_python("from gptft.commands.doctor import tiny_training_step; print(tiny_training_step())")
    if ok:
        return Check("ok", "training step", message)
    return Check("FAIL", "training step", f"a tiny compiled training step failed: {message}",
                 "reinstall with the tested versions: pip install -c constraints.txt -e .")


def check_mindnlp() -> Check:
    version = installed_version("mindnlp")
    if version is None:
        return Check("ok", "mindnlp", "not installed (good: gptft reads the same Hugging Face folders itself)")
    return Check("FAIL", "mindnlp", f"{version}: {MINDNLP}", "pip uninstall mindnlp")


def check_hub(timeout: float = 5.0) -> Check:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return Check("warn", "hub", "HF_HUB_OFFLINE is set: models and datasets come from the local cache only")
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{endpoint}/api/models/openai-community/gpt2",
                                                           method="HEAD"), timeout=timeout):
            pass
        return Check("ok", "hub", f"{endpoint} answers")
    except urllib.error.HTTPError as error:  # it answered, even if not with 200
        return Check("ok", "hub", f"{endpoint} answers (HTTP {error.code})")
    except (urllib.error.URLError, OSError) as error:
        return Check("warn", "hub", f"{endpoint} is not reachable ({getattr(error, 'reason', error)}); hub names "
                     "will not download, local folders still work",
                     "export HF_ENDPOINT=https://hf-mirror.com   # or another mirror you can reach")


def check_compile_cache() -> Check:
    from ..training import compile_cache

    base = compile_cache.root()
    if base is None:
        return Check("ok", "compile cache", f"off ({compile_cache.ENVIRONMENT}=off): every run compiles its graphs")
    runs, size = compile_cache.entries()
    return Check("ok", "compile cache", f"{base}: {runs} cached runs, {size / 1e6:.0f} MB "
                 f"(gptft doctor --clear-compile-cache empties it; {compile_cache.ENVIRONMENT}=off turns it off)")


def run_checks(check_hub_too: bool = True, compile_step: bool = True) -> list[Check]:
    checks = [check_python(), *check_packages(), *check_imports()]
    if all(c.status == "ok" for c in checks if c.name == "import mindspore"):
        checks.append(check_devices())
        if compile_step:
            checks.append(check_compiled_step())
    checks.append(check_mindnlp())
    checks.append(check_compile_cache())
    if check_hub_too:
        checks.append(check_hub())
    return checks


def main(check_hub: bool = True, compile_step: bool = True, clear_compile_cache: bool = False) -> int:
    if clear_compile_cache:
        from ..training import compile_cache

        print(f"cleared the compile cache {compile_cache.clear()}")
    checks = run_checks(check_hub, compile_step)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.status:4s}  {c.name:{width}s}  {c.detail}")
        if c.fix and c.status != "ok":
            print(f"{'':4s}  {'':{width}s}  fix: {c.fix}")
    failed = [c for c in checks if c.status == "FAIL"]
    print("environment is sound" if not failed else f"{len(failed)} problem(s) found")
    return 1 if failed else 0
