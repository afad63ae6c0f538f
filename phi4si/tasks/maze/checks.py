"""Argument checks shared by the maze modules (numpy only): integers with a lower bound and
arrays of finite (x, y) points, refused with a :class:`~phi4si.errors.ParameterError` that names
the argument, the first offending entry (``name[i, j]`` for arrays) and the fix.

>>> check_int("tries", 4, 1)
4
>>> as_points([[1.5, 2.0], [3.0, 4.0]], "start").dtype
dtype('float64')
>>> as_points([[1.5, 2.0], [float("nan"), 4.0]], "start")
Traceback (most recent call last):
...
phi4si.errors.ParameterError: start[1] (nan, 4) is not finite; give finite (x, y) coordinates
"""

from __future__ import annotations

import numpy as np

from ...errors import ParameterError

__all__ = ["check_int", "as_points", "fmt_point", "point_label"]


def check_int(name: str, value, lo: int) -> int:
    """``value`` as an int if it is an integer (not a bool) ``>= lo``; else :class:`ParameterError`.

    >>> check_int("n", 3, 0), check_int("n", np.int64(5), 1)
    (3, 5)
    >>> check_int("n", 2.0, 0)
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: n must be an integer, got 2.0
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    if value < lo:
        raise ParameterError(f"{name} must be >= {lo}, got {value}")
    return int(value)


def fmt_point(p) -> str:
    """``(x, y)`` with ``%g`` coordinates, for messages.

    >>> fmt_point([1.5, 2.0])
    '(1.5, 2)'
    """
    return f"({p[0]:g}, {p[1]:g})"


def point_label(name: str, points: np.ndarray, flat_index: int) -> str:
    """How a message names point ``flat_index`` (row-major over the leading axes) of ``points``
    (..., 2): ``name`` for a single point, ``name[i, j]`` in an array.

    >>> point_label("goal", np.zeros((2, 3, 2)), 4), point_label("goal", np.zeros(2), 0)
    ('goal[1, 1]', 'goal')
    """
    if points.ndim == 1:
        return name
    ix = np.unravel_index(flat_index, points.shape[:-1])
    return f"{name}[{', '.join(str(int(i)) for i in ix)}]"


def as_xy(points, name: str) -> np.ndarray:
    """``points`` as a float64 array (..., 2), refusing other shapes (non-finite values pass).

    >>> as_xy([[0, 1], [float("nan"), 2]], "p").shape
    (2, 2)
    """
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an (x, y) pair or an array of them, got {points!r}") from None
    if p.ndim == 0 or p.shape[-1] != 2:
        raise ParameterError(f"{name} must be an (x, y) pair or an array of them with last axis 2; got shape {p.shape}")
    return p


def as_points(points, name: str) -> np.ndarray:
    """``points`` as a float64 array (..., 2), refusing other shapes and non-finite values.

    >>> as_points([1, 2], "p").tolist()
    [1.0, 2.0]
    >>> as_points([1, 2, 3], "p")
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: p must be an (x, y) pair or an array of them with last axis 2; got shape (3,)
    """
    p = as_xy(points, name)
    bad = ~np.isfinite(p).all(-1)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ParameterError(f"{point_label(name, p, i)} {fmt_point(p.reshape(-1, 2)[i])} is not finite; "
                             "give finite (x, y) coordinates")
    return p
