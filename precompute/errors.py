"""Errors meant for users: each message names the file, row or setting and what to do about it."""


class FeatureSpaceError(Exception):
    """Base class for problems a user can fix; the CLI prints the message without a traceback."""


class ConfigError(FeatureSpaceError):
    """The run configuration is missing, malformed or names something that does not exist."""


class DatasetError(FeatureSpaceError):
    """The dataset (folder tree or manifest) cannot be read as configured."""


class StoreError(FeatureSpaceError):
    """The store is missing, from an incompatible format version, or lacks a needed artifact."""


class BackboneError(FeatureSpaceError):
    """The backbone or its weights cannot be loaded."""


class TrainingError(FeatureSpaceError):
    """Training cannot go on as configured (e.g. the loss diverged)."""
