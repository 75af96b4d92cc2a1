"""Typed exceptions. Each carries one clear line for users; the CLI prints it and exits 2."""


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
