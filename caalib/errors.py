"""Exceptions the command line turns into one clear line and a non-zero exit."""

from __future__ import annotations


class CaaError(Exception):
    """Base of every error the study reports to a user rather than as a traceback."""


class DatasetError(CaaError):
    """A dataset directory, its meta.csv, a fold file or an audio file is unusable."""


class FeatureError(CaaError):
    """Features cannot be extracted or a feature file is unusable."""


class ConfigError(CaaError):
    """A model, training or study configuration is malformed."""
