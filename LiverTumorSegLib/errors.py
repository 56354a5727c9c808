"""Typed exceptions raised by LiverTumorSegLib; callers show their message as is."""


class LiverTumorSegError(Exception):
    """Base class of every error this library raises on purpose."""


class InvalidInputError(LiverTumorSegError):
    """The input image cannot be segmented (wrong dimension, NaNs, too small, unreadable)."""


class NotCTError(InvalidInputError):
    """The input intensities do not look like CT in Hounsfield units (e.g. an MR)."""


class ModelError(LiverTumorSegError):
    """A model file or its manifest is missing, tampered with, or unusable."""


class CancelledError(LiverTumorSegError):
    """The run was cancelled by the caller; no output was written."""


class OutputExistsError(LiverTumorSegError):
    """An output file exists already and overwriting was not asked for."""


class EvaluationError(InvalidInputError, ValueError):
    """Predictions and references cannot be compared (missing pair, different grids, bad labels)."""
