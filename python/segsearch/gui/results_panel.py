"""The sketch tool's results column: a line saying what the query is, and a fixed grid of result cells (thumbnail,
rank, distance, file name; the query photo's own result framed) that make their result the query photo when
clicked; plus the status line that sums up a search's answer.
"""

from __future__ import annotations

import tkinter as tk

from .search_worker import SearchAnswer
from .widgets import ElidedLabel, ResultCell

__all__ = ["QUERY_FRAME", "RESULT_COLUMNS", "THUMB_SIZE", "ResultsPanel", "answer_message"]

THUMB_SIZE = (112, 84)  # result thumbnails fit in this box (4:3, like most photos)
RESULT_COLUMNS = 3
QUERY_FRAME = "#d9480f"  # frame of the result that is the current query photo


class ResultsPanel:
    """The results column, packed at the left of ``parent`` and taking the room left: ``app.k`` result cells
    (a click on cell ``i`` calls ``app.use_result(i)``); ``app.is_query`` tells which result is the query
    photo."""

    def __init__(self, parent: tk.Misc, app):
        self.app = app
        right = self.frame = tk.Frame(parent)
        right.pack(side="left", fill="both", expand=True, padx=6, pady=6)
        self.query_label = ElidedLabel(right, text="Query: sketch only", elide="middle")
        self.query_label.pack(side="top", fill="x")
        self.results_frame = tk.Frame(right)
        self.results_frame.pack(side="top", fill="both", expand=True)
        self.result_cells: list[ResultCell] = []
        for i in range(app.k):
            cell = ResultCell(self.results_frame, thumb_size=THUMB_SIZE, query_colour=QUERY_FRAME)
            cell.grid(row=i // RESULT_COLUMNS, column=i % RESULT_COLUMNS, padx=3, pady=3, sticky="n")
            cell.bind("<Button-1>", lambda e, i=i: app.use_result(i), add="+")
            self.result_cells.append(cell)

    def show(self, hits, thumbs) -> None:
        """Show ``hits`` with their thumbnails ``thumbs`` (PIL images or None) in the first cells; the others
        are emptied."""
        for i, cell in enumerate(self.result_cells):
            if i < len(hits):
                cell.show(hits[i], thumbs[i], is_query=self.app.is_query(hits[i]))
                if hits[i].path is None:  # the grey "not shown" tile: say why in its tooltip
                    cell.tooltip.text = f"{hits[i].rank}. {str(hits[i].id)!a} not shown: {hits[i].note}"
            else:
                cell.clear()


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
