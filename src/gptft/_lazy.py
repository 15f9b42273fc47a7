"""Package attributes that import their module on first use (PEP 562).

`import gptft` (and `import gptft.tasks`, ...) then does not import MindSpore: the command line can set
MindSpore's log level first, `gptft doctor` runs where MindSpore itself fails to import, and the input
formats stay usable without it.
"""

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """`(__getattr__, __dir__, __all__)` for `package`, whose name `N` lives in module `exports[N]`."""
    names = sorted(exports)

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            setattr(importlib.import_module(package), name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return __getattr__, __dir__, names
