"""The sketch tool's refinement chips: one small chip for each refinement of the query (a filter, a class left
out or emphasised, the likes and the unlikes; :meth:`~segsearch.gui.refine.Refinement.chips`), laid out in as
many rows as the width needs (a chip wider than the bar is cut, its × kept), each with a × that removes it; a
click on a chip offers its other values (a class's share or weight) or opens the filters. Everything here calls
the app's public methods.
"""

from __future__ import annotations

import tkinter as tk

from .refine import FILTERS, SHARES, WEIGHTS, Chip
from .widgets import MARK_COLOURS, Tooltip, hex_colour, text_colour

__all__ = ["RefineBar"]

GAP = 3  # pixels between chips
FILTER_COLOUR = "#dee2e6"


class RefineBar:
    """The chips (``frame``, for the caller to place; it takes the width it is given and is as tall as its rows
    of chips, 1 pixel when there are none). ``app``: ``classes``, ``palette``, ``remove_refinement(kind, key)``,
    ``exclude_class(c, share)``, ``emphasise_class(c, weight)``, ``show_filters()``."""

    def __init__(self, parent: tk.Misc, app):
        self.app = app
        self.frame = tk.Frame(parent, height=1)
        self.chips: list[tuple[Chip, tk.Frame]] = []
        self._width = 0
        self.frame.bind("<Configure>", self._resized, add="+")

    def show(self, chips: list[Chip]) -> None:
        """Show ``chips`` instead of the ones shown."""
        for _, w in self.chips:
            w.destroy()
        self.chips = [(c, self._chip(c)) for c in chips]
        self._lay_out()

    def _colours(self, chip: Chip) -> tuple[str, str]:
        if chip.kind in ("exclude", "weights"):
            rgb = self.app.palette[chip.key % len(self.app.palette)]
            return hex_colour(rgb), text_colour(rgb)
        if chip.kind in MARK_COLOURS:
            return MARK_COLOURS[chip.kind], "#000000"
        return FILTER_COLOUR, "#000000"

    def _chip(self, chip: Chip) -> tk.Frame:
        bg, fg = self._colours(chip)
        w = tk.Frame(self.frame, background=bg, relief="raised", borderwidth=1)
        close = tk.Label(w, text="×", background=bg, foreground=fg, padx=3, pady=0, cursor="hand2")
        close.pack(side="right")  # first: a chip cut to the bar's width keeps its ×
        text = tk.Label(w, text=chip.text, background=bg, foreground=fg, padx=3, pady=0, cursor="hand2", anchor="w")
        text.pack(side="left", fill="x", expand=True)
        Tooltip(text, chip.tooltip)
        Tooltip(close, "remove")
        text.bind("<Button-1>", lambda e, c=chip: self._clicked(c, e), add="+")
        close.bind("<Button-1>", lambda e, c=chip: self.app.remove_refinement(c.kind, c.key), add="+")
        w.text_label, w.close_label = text, close  # for tests
        return w

    def _clicked(self, chip: Chip, event) -> None:
        menu = self.menu_for(chip)
        if menu is not None:
            menu.tk_popup(event.x_root, event.y_root)

    def menu_for(self, chip: Chip) -> tk.Menu | None:
        """The menu a click on ``chip`` opens (None for likes and unlikes: the × removes them)."""
        app = self.app
        if chip.kind in FILTERS:
            m = tk.Menu(self.frame, tearoff=False)
            m.add_command(label="Change the filters…", command=app.show_filters)
            m.add_command(label="Remove this filter", command=lambda: app.remove_refinement(chip.kind, None))
            return m
        if chip.kind == "exclude":
            m = tk.Menu(self.frame, tearoff=False)
            for s in SHARES:
                m.add_command(
                    label=f"Leave out photos with {s * 100:g}% or more",
                    command=lambda s=s: app.exclude_class(chip.key, s),
                )
        elif chip.kind == "weights":
            m = tk.Menu(self.frame, tearoff=False)
            for w in WEIGHTS:
                m.add_command(label=f"Counts ×{w:g}", command=lambda w=w: app.emphasise_class(chip.key, w))
        else:
            return None
        m.add_separator()
        m.add_command(label="Remove", command=lambda: app.remove_refinement(chip.kind, chip.key))
        return m

    def _resized(self, event) -> None:
        if event.width != self._width:
            self._width = event.width
            self._lay_out()

    def _lay_out(self) -> None:
        """Place the chips left to right, a new row when the next one does not fit the width."""
        self.frame.update_idletasks()  # the new chips' requested sizes
        width = max(self.frame.winfo_width(), 1)
        x = y = row = 0
        for _, w in self.chips:
            cw, ch = min(w.winfo_reqwidth(), width), w.winfo_reqheight()  # no wider than the bar
            if x and x + cw > width:
                x, y, row = 0, y + row + GAP, 0
            w.place(x=x, y=y, width=cw)
            x, row = x + cw + GAP, max(row, ch)
        height = y + row + GAP if self.chips else 1
        if int(self.frame.cget("height")) != height:
            self.frame.configure(height=height)
