"""The errors gptft raises for bad input.

Each names the file, field or key at fault in its message. The command line prints that one line and
exits with code 2 for any of them (a traceback only with `--debug`); anything else is a bug in gptft.
"""


class GptftError(Exception):
    """Base of every error caused by the user's input or environment rather than by gptft itself."""


class ConfigError(GptftError, ValueError):
    """A configuration key, type or value that cannot be used."""


class DataError(GptftError, ValueError):
    """A data file, column, row or label that cannot be used."""


class ModelFileError(GptftError, ValueError):
    """A model, tokenizer or checkpoint file that is missing, corrupt or does not fit the model."""
