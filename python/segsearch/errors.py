"""Exception types of segsearch."""


class SegsearchError(Exception):
    """Base class of the errors segsearch raises itself (bad arguments raise ValueError)."""


class IndexFormatError(SegsearchError, ValueError):
    """An index file is not a segsearch index, is damaged or truncated, or is of an unknown version."""


class NotTrainedError(SegsearchError, RuntimeError):
    """The index has no codebook yet: call ``train`` (or build it with ``Index.from_codebook``)."""
