"""Turning user inputs (numpy arrays, torch tensors, lists) into numpy arrays."""
from __future__ import annotations

import numpy as np


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
