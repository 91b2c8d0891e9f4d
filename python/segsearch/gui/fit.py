"""How big the sketch tool's window and canvas are: the first window size, which fits the screen, and the side of
the (square) canvas for the room the window gives it. Pure arithmetic on pixel sizes, no Tk.
"""

from __future__ import annotations

__all__ = ["CANVAS_MIN", "CANVAS_PX", "RESULT_COLUMNS", "SCREEN_SHARE", "canvas_side", "first_size"]

CANVAS_MIN = 256  # the smallest canvas (the window's minimum size keeps it)
CANVAS_PX = 512  # the canvas at the window's first size, where the screen allows
RESULT_COLUMNS = 3  # result columns at the window's first size, where the screen allows
SCREEN_SHARE = 0.9  # the first window takes at most this share of the screen's width and height


def first_size(
    preferred: tuple[int, int], minimum: tuple[int, int], screen: tuple[int, int], menu_height: int = 0
) -> tuple[int, int]:
    """The window's first (width, height): ``preferred``, cut to :data:`SCREEN_SHARE` of the ``screen`` (the
    menu bar, ``menu_height`` pixels above the window's area, counts too), never below ``minimum``."""
    cap_w = int(screen[0] * SCREEN_SHARE)
    cap_h = int(screen[1] * SCREEN_SHARE) - int(menu_height)
    return max(min(preferred[0], cap_w), minimum[0]), max(min(preferred[1], cap_h), minimum[1])


def canvas_side(width_room: int, height_room: int, result_pitch: int) -> int:
    """The canvas's side in pixels. ``width_room``: the width the canvas and all result columns but the first
    may share; ``height_room``: the height the canvas may take; ``result_pitch``: the width of a result column.

    The canvas grows first, from :data:`CANVAS_MIN` to :data:`CANVAS_PX`; then the results, to
    :data:`RESULT_COLUMNS` columns; the width beyond that is shared half and half. The canvas is square, so it
    is never taller than ``height_room``, and never smaller than :data:`CANVAS_MIN`."""
    extra = max(int(width_room) - CANVAS_MIN, 0)
    first = min(extra, CANVAS_PX - CANVAS_MIN)
    extra -= first
    extra -= min(extra, (RESULT_COLUMNS - 1) * max(int(result_pitch), 0))
    side = CANVAS_MIN + first + extra // 2
    return max(min(side, int(height_room)), CANVAS_MIN)
