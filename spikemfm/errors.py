"""Exception types raised by spikemfm.

Every error names what was wrong (a file, a module path, a config field) and what to do about it.
"""
from __future__ import annotations


class SpikeMFMError(Exception):
    """Base class for all spikemfm errors."""


class DataError(SpikeMFMError):
    """A data set is missing, unreadable or corrupt."""


class ModelLoadError(SpikeMFMError):
    """A model name is unknown or its weights cannot be loaded."""


class UnsupportedModuleError(SpikeMFMError):
    """A model contains a module that the converter cannot handle."""


class ConfigError(SpikeMFMError, ValueError):
    """A configuration field holds an invalid value."""


class FidelityError(UnsupportedModuleError):
    """The graph extracted from a module does not compute what the module computes."""


class OutputError(SpikeMFMError):
    """An output folder or file cannot be written (not a folder, no permission, disk full)."""


class SetMismatchWarning(UserWarning):
    """Files that should come from one run (a model and its summary) come from different runs."""
