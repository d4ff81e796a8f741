"""What every preprocess function shares: the rejection error and input checks."""

from __future__ import annotations

import numpy as np


class PreprocessError(ValueError):
    """Input that a preprocess function cannot use; `.reason` is a short slug for counting rejections."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def as_real_array(data: object, name: str) -> np.ndarray:
    """np.asarray that refuses non-numeric, boolean, complex and structured input."""
    if data is None:
        raise PreprocessError("empty", f"{name} is None")
    array = np.asarray(data)
    if array.dtype.names is not None:
        raise PreprocessError(
            "bad_dtype",
            f"{name} is a structured array (fields {array.dtype.names}); pass a plain numeric array, "
            "e.g. numpy.lib.recfunctions.structured_to_unstructured",
        )
    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise PreprocessError("bad_dtype", f"{name} must be a real integer or float array, got {array.dtype}")
    return array
