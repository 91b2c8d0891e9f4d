"""The checks of user input, one of each, in the library's words (the CLI maps them to its flags).

Every function raises ``ValueError`` with a message that says what was wrong and what is expected.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
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


def as_float32(a) -> np.ndarray:
    """``a`` (a numpy array, or a memory map) as a C-contiguous float32 array, not copied when it is one. float16
    goes through the core's conversion: the same values as ``astype``, but numpy's cast is ~40x slower on float16
    subnormals, which most probabilities in softmax maps are (a training sample is float16)."""
    a = np.asarray(a)
    if a.dtype == np.float16:
        return _core.float16_to_float32(a.view(np.uint16))
    return np.ascontiguousarray(a, dtype=np.float32)


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
    if text in classes:  # as written: no pass lowering every name (a search with exclude= or weights= asks each time)
        return list(classes).index(text)
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    near = difflib.get_close_matches(text.lower(), lowered, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(classes[lowered.index(m)]) for m in near)}?" if near else ""
    raise ValueError(f"unknown class name {name!r}{hint} ('segsearch classes INDEX_DIR' lists the classes)")


def check_class_weights(weights) -> tuple[tuple[int, float], ...]:
    """Class weights {class number: weight} (or (class, weight) pairs) as ((class, weight), ...) sorted by class:
    classes integers >= 0, each once, weights finite numbers > 0; a ValueError saying what is wrong otherwise. (Names
    are turned into numbers by whoever knows the class list: ``PhotoIndex.search(weights=)``.)"""
    if isinstance(weights, Mapping):
        pairs = list(weights.items())
    elif isinstance(weights, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in weights):
        pairs = [tuple(p) for p in weights]
    else:
        raise ValueError(f"weights must be a dict {{class: weight}}; got {type(weights).__name__}")
    out = {}
    for c, w in pairs:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Integral) or c < 0:
            raise ValueError(f"a weight's class must be a class number >= 0; got {c!r}")
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real) or not (0 < float(w) < math.inf):
            raise ValueError(f"the weight of class {int(c)} must be a number > 0; got {w!r}")
        if int(c) in out:
            raise ValueError(f"class {int(c)} is given two weights; give each class once")
        out[int(c)] = float(w)
    return tuple(sorted(out.items()))


def class_items(value, class_names, default, what: str, example: str) -> list[tuple[int, object]]:
    """[(class number, its value as given)] of a per-class option: a dict {class: value} or a list of classes (each
    with ``default``), a class by name (any case, :func:`class_index`) or number; ValueError (one line, ``what``
    naming the option, ``example`` its dict form) for anything else. The values are the caller's to check."""
    if isinstance(value, (str, bytes)):
        value = [value]
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = [(c, default) for c in value]
    else:
        raise ValueError(f"{what} must be a list of class names or a dict {example}; got {type(value).__name__}")
    out = []
    for cls, v in items:
        if isinstance(cls, numbers.Integral) and not isinstance(cls, bool):
            if not 0 <= int(cls) < len(class_names):
                raise ValueError(f"{what}: class {int(cls)} is not in 0..{len(class_names) - 1}")
            out.append((int(cls), v))
        elif isinstance(cls, str):
            out.append((class_index(cls, class_names), v))
        else:
            raise ValueError(f"{what}: a class is a name or a number; got {cls!r}")
    return out
