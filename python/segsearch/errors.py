"""Every exception type segsearch defines: each is a :class:`SegsearchError`, and the command line turns each
into one line (``segsearch: error: ...``, exit status 2). Bad arguments raise ValueError (or, for options of
:class:`~segsearch.library.build.BuildOptions`, :class:`OptionError`, which is one)."""

from __future__ import annotations


class SegsearchError(Exception):
    """Base class of the errors segsearch raises itself (bad arguments raise ValueError)."""


class IndexFormatError(SegsearchError, ValueError):
    """An index file is not a segsearch index, is damaged or truncated, or is of an unknown version."""


class ShardMissingError(IndexFormatError):
    """A shard an index folder's manifest lists is missing (a compaction may have deleted it meanwhile)."""


class NotTrainedError(SegsearchError, RuntimeError):
    """The index has no codebook yet: call ``train`` (or build it with ``Index.from_codebook``)."""


class OptionError(SegsearchError, ValueError):
    """An option has a value it cannot take. ``option`` names it as the Python API does (``n_centroids``); the
    command line says it as its flag (``--centroids``)."""

    def __init__(self, option: str, message: str):
        text = message if message.startswith(option + " ") else f"{option}: {message}"
        super().__init__(text)
        self.option = option


class WeightsNotFoundError(SegsearchError, FileNotFoundError):
    """The segmentation network's weights are not available locally."""


class TFLiteImportError(SegsearchError, ValueError):
    """The TFLite file is not the expected DeepLabV3-MobileNetV2-ADE20K network."""


class FTS5Unavailable(SegsearchError, RuntimeError):
    """The Python's SQLite lacks FTS5 (or its porter tokenizer), which caption search needs."""


class RequestError(SegsearchError):
    """A request to ``segsearch serve`` that is refused: ``status`` (4xx) and a one-line message saying what was
    wrong and what to do."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class RequestTooLarge(RequestError):
    """A request body over the server's cap (413)."""

    def __init__(self, message: str = "the request is larger than the server's cap"):
        super().__init__(message, 413)
