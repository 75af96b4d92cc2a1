"""Typed exceptions. Each carries one clear line for users; the CLI prints it and exits 2."""


from __future__ import annotations


class RankRobustError(Exception):
    """Base class: an error whose message is meant for the user, in one line."""


class DataError(RankRobustError):
    """A dataset is missing, truncated, corrupt or of the wrong shape."""


class ConfigError(RankRobustError, ValueError):
    """An unknown, misspelt, ill-typed or inconsistent option."""


class CheckpointError(RankRobustError):
    """A checkpoint is missing, corrupt, or not a safe (safetensors) file."""


class NonFiniteError(RankRobustError, ValueError):
    """Numbers that must be finite (weights, inputs) are NaN or infinite."""


class TrainingDivergedError(RankRobustError):
    """The loss became NaN or infinite."""


class OptionError(RankRobustError):
    """An error about one keyword argument of a library call, written with ``{option}`` where
    its name goes: the keyword by default; a command line re-raises it naming its flag
    (:meth:`renamed`), so that library messages name no flag."""

    def __init__(self, template: str, option: str) -> None:
        super().__init__(template.replace("{option}", option))
        self.template = template
        self.option = option

    def renamed(self, name: str) -> OptionError:
        """The same error (same class) naming the option ``name``."""
        return type(self)(self.template, name)


class ConfigOptionError(OptionError, ConfigError):
    """A :class:`ConfigError` about one option (:class:`OptionError`)."""


class CheckpointOptionError(OptionError, CheckpointError):
    """A :class:`CheckpointError` about one option (:class:`OptionError`)."""
