"""Errors that reach an operator as one clear line (what, where, what to do)."""


class LofError(Exception):
    """Base class: the message is printed as is by the CLI, without a traceback."""


class ConfigError(LofError):
    """A setting is missing or malformed."""


class SourceError(LofError):
    """LEB2 or Amplitude could not be read."""


class StoreError(LofError):
    """The features or predictions store could not be used."""


class ModelError(LofError):
    """The registry has no usable model, or the model does not fit the data."""


class DataError(LofError):
    """Input data is malformed or missing what a step needs."""
