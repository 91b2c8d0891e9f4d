"""The checks of user input, one of each, in the library's words (the CLI maps them to its flags).

Every function raises ``ValueError`` with a message that says what was wrong and what is expected.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import _core

#: Default sparsity cut for image queries: query pixels with p_c(j) <= eps are left out of the LUT's dot
#: products. ``eps=0`` is exact. See docs/how-it-works.md for what the default changes.
DEFAULT_EPS = 1e-3


def as_numpy(x, what: str) -> np.ndarray:
    """A numpy view or copy of ``x`` (numpy array, torch tensor on any device, or nested sequence)."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        return x.detach().to("cpu").numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and such
        raise ValueError(f"{what} must be an array; could not convert {type(x).__name__}: {e}") from None


def check_count(value, name: str, lo: int = 1, hi: int | None = None) -> int:
    """A whole number in ``lo..hi`` (no upper bound for None); bools and floats are refused."""
    if type(value) is int and value >= lo and (hi is None or value <= hi):  # the common case, fast
        return value
    rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or not (value >= lo and (hi is None or value <= hi))
    ):
        raise ValueError(f"{name} must be a whole number {rng}; got {value!r}")
    return int(value)


def check_optional_count(value, name: str, lo: int = 1, hi: int | None = None) -> int | None:
    """:func:`check_count`, with None passed through (meaning "the default")."""
    return None if value is None else check_count(value, name, lo, hi)


def check_k(k) -> int:
    """How many results: a whole number >= 1 (larger than the index returns everything)."""
    return check_count(k, "k", 1)


def check_eps(eps) -> float:
    """The image-query sparsity cut: :data:`DEFAULT_EPS` for None, else a finite number >= 0."""
    try:
        eps = DEFAULT_EPS if eps is None else float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}") from None
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0; got {eps}")
    return eps


def check_threads(threads) -> int:
    """A thread count: a whole number >= 1, clamped to the CPUs this process may use (``_core.max_threads()``:
    more threads cannot make a search faster); None = 0, the core's default (all of them)."""
    if threads is None:
        return 0
    return min(check_count(threads, "threads", 1), _core.max_threads())


def check_folder(path, what: str = "index directory", hint: str = "") -> Path:
    """An existing folder (``~`` expanded); FileNotFoundError naming it, with ``hint`` (what to do) after."""
    d = Path(path).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"{what} {d} does not exist{hint}")
    return d


def class_index(name: str, classes: Sequence[str]) -> int:
    """Index of a class given by name (case-insensitive) or by number; ValueError naming close matches."""
    text = name.strip()
    if text.isdigit() and int(text) < len(classes):
        return int(text)
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    near = difflib.get_close_matches(text.lower(), lowered, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(classes[lowered.index(m)]) for m in near)}?" if near else ""
    raise ValueError(f"unknown class name {name!r}{hint} ('segsearch classes INDEX_DIR' lists the classes)")
