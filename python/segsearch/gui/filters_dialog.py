"""The sketch tool's filters window (Refine → Filters): the date, folder and camera filters of the search, set
with ``app.set_filters`` (which checks them: a bad date is a one-line error in the status bar and the window
stays open to fix it). Disabled, with a note saying how to add it, when the index folder has no photo metadata.
"""

from __future__ import annotations

import tkinter as tk

from ..library.metadata import FILL_HINT
from .refine import FILTERS, has_metadata

__all__ = ["LABELS", "show_filters"]

LABELS = {
    "after": "Taken on or after:",
    "before": "Taken before:",
    "folder": "In the folder:",
    "camera": "Camera model has:",
}


def show_filters(app) -> tk.Toplevel:
    """Open the filters window over ``app.master`` (``app.refinement`` fills it); returns it, with ``entries``
    {filter: Entry}, ``apply()`` and ``note`` (the text that says why it is disabled, or how to write dates)."""
    top = tk.Toplevel(app.master)
    top.title("segsearch — filters")
    top.transient(app.master)
    body = tk.Frame(top, padx=10, pady=8)
    body.pack(side="top", fill="both", expand=True)
    enabled = has_metadata(app.pi)
    top.entries = {}
    for row, name in enumerate(FILTERS):
        tk.Label(body, text=LABELS[name], anchor="w").grid(row=row, column=0, sticky="w", padx=(0, 8), pady=1)
        var = tk.StringVar(value=getattr(app.refinement, name) or "")
        e = tk.Entry(body, textvariable=var, width=24)
        e.grid(row=row, column=1, sticky="ew", pady=1)
        e.var = var
        if not enabled:
            e.configure(state="disabled")
        top.entries[name] = e
    if enabled:
        top.note = (
            "Dates like 2024-05-01 or 2024-05-01T12:00 (EXIF date, else the file's); folder: inside the photos folder."
        )
    else:
        top.note = f"This index has no photo metadata, so it cannot filter by date, folder or camera: {FILL_HINT}."
    tk.Label(body, text=top.note, anchor="w", justify="left", wraplength=360, foreground="#555555").grid(
        row=len(FILTERS), column=0, columnspan=2, sticky="w", pady=(6, 0)
    )

    def apply() -> bool:
        if app.set_filters(**{n: e.var.get() for n, e in top.entries.items()}):
            top.destroy()
            return True
        return False

    def clear() -> None:
        for e in top.entries.values():
            e.var.set("")
        apply()

    top.apply = apply
    buttons = tk.Frame(top)
    buttons.pack(side="bottom", pady=(0, 8))
    state = "normal" if enabled else "disabled"
    tk.Button(buttons, text="Apply", command=apply, state=state).pack(side="left", padx=3)
    tk.Button(buttons, text="Clear", command=clear, state=state).pack(side="left", padx=3)
    tk.Button(buttons, text="Close", command=top.destroy).pack(side="left", padx=3)
    top.bind("<Return>", lambda e: apply() if enabled else None)
    top.bind("<Escape>", lambda e: top.destroy())
    if enabled:
        top.entries["after"].focus_set()
    return top
