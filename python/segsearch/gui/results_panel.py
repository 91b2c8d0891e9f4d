"""The sketch tool's results column: a line saying what the query is, and the result cells (thumbnail, rank,
distance, file name, the classes the distance is most made of; the query photo's own result framed, liked and
unliked ones framed in green and red) that make their result the query photo when clicked, in as many columns as
the column's width holds, scrolled when they do not all fit; a right click on a result offers to like or unlike
it. Plus the status line that sums up a search's answer.
"""

from __future__ import annotations

import tkinter as tk

from .search_worker import SearchAnswer
from .shortcuts import keys_of
from .widgets import ElidedLabel, ResultCell

__all__ = ["QUERY_FRAME", "THUMB_SIZE", "ResultsPanel", "answer_message"]

THUMB_SIZE = (112, 84)  # result thumbnails fit in this box (4:3, like most photos)
QUERY_FRAME = "#d9480f"  # frame of the result that is the current query photo
CELL_PAD = 3  # pixels around each result cell


class ResultsPanel:
    """The results column (``frame``, for the caller to place; it asks for the width of one result column and
    takes what it is given): ``app.k`` result cells (a click on cell ``i`` calls ``app.use_result(i)``, a right
    click opens :meth:`menu_for`; the pointer entering and leaving it, ``app.hover_result(i)`` and
    ``app.hover_result(None)``); ``app.is_query`` tells which result is the query photo, ``app.result_mark``
    whether it is liked or unliked. The cells sit in a scrolled area (``view``, a
    canvas; the mouse wheel scrolls it) in :attr:`columns` columns, as many as its width holds."""

    def __init__(self, parent: tk.Misc, app):
        self.app = app
        right = self.frame = tk.Frame(parent)
        self.query_label = ElidedLabel(right, text="Query: sketch only", elide="middle")
        self.query_label.pack(side="top", fill="x")
        area = tk.Frame(right)
        area.pack(side="top", fill="both", expand=True)
        self.view = tk.Canvas(area, highlightthickness=0, borderwidth=0, height=1)
        bar = tk.Scrollbar(area, orient="vertical", command=self.view.yview)
        self.view.configure(yscrollcommand=bar.set)
        bar.pack(side="right", fill="y")
        self.view.pack(side="left", fill="both", expand=True)
        self.results_frame = tk.Frame(self.view)
        self.view.create_window(0, 0, window=self.results_frame, anchor="nw")
        self.result_cells: list[ResultCell] = []
        for i in range(app.k):
            cell = ResultCell(self.results_frame, thumb_size=THUMB_SIZE, query_colour=QUERY_FRAME, palette=app.palette)
            cell.bind("<Button-1>", lambda e, i=i: app.use_result(i), add="+")
            cell.bind("<Button-3>", lambda e, i=i: self.menu_for(i).tk_popup(e.x_root, e.y_root), add="+")
            cell.bind("<Enter>", lambda e, i=i: app.hover_result(i), add="+")
            cell.bind("<Leave>", lambda e: app.hover_result(None), add="+")
            self.result_cells.append(cell)
        self.pitch = self.result_cells[0].winfo_reqwidth() + 2 * CELL_PAD if self.result_cells else 1
        self.view.configure(width=self.pitch)  # one column: the window's minimum size
        self.columns = 0
        self._lay_out(1)
        self.view.bind("<Configure>", self._resized)
        self.results_frame.bind("<Configure>", lambda e: self.view.configure(scrollregion=self.view.bbox("all")))
        for w in (self.view, self.results_frame, *self.result_cells):
            for seq in ("<Button-4>", "<Button-5>", "<MouseWheel>"):
                w.bind(seq, self._wheel, add="+")

    def room_for(self, columns: int) -> tuple[int, int]:
        """The (width, height) of the scrolled area that shows all the cells in ``columns`` columns."""
        rows = -(-len(self.result_cells) // max(int(columns), 1))
        height = self.result_cells[0].winfo_reqheight() + 2 * CELL_PAD if self.result_cells else 0
        return columns * self.pitch, rows * height

    def _lay_out(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for i, cell in enumerate(self.result_cells):
            cell.tooltip.hide()  # the cell moves from under the pointer
            cell.grid(row=i // columns, column=i % columns, padx=CELL_PAD, pady=CELL_PAD, sticky="n")

    def _resized(self, event) -> None:
        self._lay_out(max(1, event.width // self.pitch))

    def menu_for(self, i: int) -> tk.Menu:
        """The menu a right click on result ``i`` opens: more / fewer like it, neither, make it the query photo."""
        app = self.app
        m = tk.Menu(self.view, tearoff=False)
        m.add_command(label="More like this", accelerator=keys_of("like"), command=lambda: app.like_result(i))
        m.add_command(label="Fewer like this", accelerator=keys_of("unlike"), command=lambda: app.unlike_result(i))
        m.add_command(label="Neither", command=lambda: app.mark_result(i, None))
        m.add_separator()
        m.add_command(label="Make it the query photo", command=lambda: app.use_result(i))
        return m

    def _wheel(self, event):
        step = -1 if event.num == 4 or getattr(event, "delta", 0) > 0 else 1
        self.view.yview_scroll(step, "units")
        return "break"

    def show(self, hits, thumbs, *, scroll: bool = True) -> None:
        """Show ``hits`` with their thumbnails ``thumbs`` (PIL images or None) in the first cells; the others
        are emptied. The view scrolls back to the first result (unless ``scroll`` is False: the same results
        shown again, e.g. with a new like mark)."""
        for i, cell in enumerate(self.result_cells):
            if i < len(hits):
                cell.show(hits[i], thumbs[i], is_query=self.app.is_query(hits[i]), mark=self.app.result_mark(hits[i]))
                if hits[i].path is None:  # the grey "not shown" tile: say why in its tooltip
                    cell.tooltip.text = f"{hits[i].rank}. {str(hits[i].id)!a} not shown: {hits[i].note}"
            else:
                cell.clear()
        if scroll:
            self.view.yview_moveto(0)


def answer_message(ans: SearchAnswer, drawn: list[str]) -> str:
    """The status line for a search's answer ``ans`` (not an error): how many results, how long the query and
    the photo's segmentation took, the ``drawn`` class names, and how many results are not shown."""
    msg = f"{len(ans.hits)} results, query {ans.search_ms:.1f} ms"
    if ans.segment_ms is not None:
        msg += f" (photo segmented in {ans.segment_ms:.0f} ms)"
    if drawn:
        msg += " — drawn: " + ", ".join(drawn)
    refused = sum(h.path is None for h in ans.hits)
    if refused:
        msg += f" — {refused} not shown (their ids lead outside the photos folder or to no regular file)"
    return msg
