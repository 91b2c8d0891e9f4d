"""The sketch tool's class palette column: a label in the drawing class's colour, a filter box, and the list of
the classes whose names contain the filter text, each in its palette colour. A click on a class, or Return in
the filter box (the best match for its text), makes it the drawing class; after such a pick the filter's text is
selected, so typing starts a new filter. A right click on a class offers to draw with it, to leave out the
photos with it, or to emphasise it.
"""

from __future__ import annotations

import tkinter as tk

from .widgets import ElidedLabel, hex_colour, text_colour

__all__ = ["PalettePanel", "best_match"]

_CONTROL, _ALT = 0x4, 0x8  # Tk event.state bits


def best_match(text: str, classes) -> int | None:
    """The class of ``classes`` (names) the filter text ``text`` picks: a class named exactly so, else the first
    whose name starts with it, else the first containing it (case-insensitive); None when no name contains it."""
    needle = text.strip().lower()
    names = [n.lower() for n in classes]
    for test in (lambda n: n == needle, lambda n: n.startswith(needle), lambda n: needle in n):
        for c, n in enumerate(names):
            if test(n):
                return c
    return None


class PalettePanel:
    """The palette column (``frame``, for the caller to place; its list takes the height it is given), over
    ``app.classes`` in the colours of ``app.palette``. It shows ``app.current_class`` and picks a class with
    ``app.select_class``; it has the canvas (``app.canvas``) take the focus after a pick with Return, and says in
    the app's status bar (``app.show_error``) when no class matches the filter."""

    def __init__(self, parent: tk.Misc, app):
        self.app = app
        self.visible_classes: list[int] = []
        self._filter_stale = False  # the filter holds a picked class's text: typing replaces it
        mid = self.frame = tk.Frame(parent)
        self.class_label = ElidedLabel(mid, width=22, anchor="center", relief="groove", pady=4)
        self.class_label.pack(side="top", fill="x")
        tk.Label(mid, text="Filter classes:", anchor="w").pack(side="top", fill="x", pady=(6, 0))
        self.filter_var = tk.StringVar()
        self.filter_entry = tk.Entry(mid, textvariable=self.filter_var, width=22, exportselection=False)
        self.filter_entry.pack(side="top", fill="x")
        self.filter_var.trace_add("write", lambda *a: self.fill())
        self.filter_entry.bind("<Key>", self._filter_key)
        self.filter_entry.bind("<Return>", self._filter_return)
        self.filter_entry.bind("<KP_Enter>", self._filter_return)
        self.filter_entry.bind("<Escape>", self._filter_escape)
        self.filter_entry.bind("<FocusIn>", self._filter_focus, add="+")
        lf = self.list_frame = tk.Frame(mid)
        lf.pack(side="top", fill="both", expand=True, pady=4)
        self.palette_list = tk.Listbox(
            lf, width=22, height=6, exportselection=False, activestyle="none", selectmode="browse"
        )
        sb = tk.Scrollbar(lf, orient="vertical", command=self.palette_list.yview)
        self.palette_list.configure(yscrollcommand=sb.set)
        self.palette_list.pack(side="left", fill="both", expand=True)
        sb.pack(side="left", fill="y")
        self.palette_list.bind("<<ListboxSelect>>", self._palette_clicked)
        self.palette_list.bind("<Button-3>", self._context_menu)

    def fill(self) -> None:
        """List the classes matching the filter, the drawing class selected."""
        app = self.app
        needle = self.filter_var.get().strip().lower()
        self.visible_classes = [i for i, n in enumerate(app.classes) if needle in n.lower()]
        lb = self.palette_list
        lb.delete(0, "end")
        for row, c in enumerate(self.visible_classes):
            lb.insert("end", f" {c:3d}  {app.classes[c]}")  # the class index, as in `segsearch classes`
            rgb = app.palette[c % len(app.palette)]
            lb.itemconfigure(
                row,
                background=hex_colour(rgb),
                foreground=text_colour(rgb),
                selectbackground=hex_colour(rgb),
                selectforeground=text_colour(rgb),
            )
        if app.current_class in self.visible_classes:
            row = self.visible_classes.index(app.current_class)
            lb.selection_set(row)
            lb.see(row)
        app.mark_dirty()

    def show_class(self, c: int) -> None:
        """Show class ``c`` as the drawing class: the label, and the list's selection when it is listed."""
        rgb = self.app.palette[c % len(self.app.palette)]
        self.class_label.configure(background=hex_colour(rgb), foreground=text_colour(rgb))
        self.class_label.set_text(f"{c} {self.app.classes[c]}")
        lb = self.palette_list
        lb.selection_clear(0, "end")
        if c in self.visible_classes:
            row = self.visible_classes.index(c)
            lb.selection_set(row)
            lb.see(row)

    def _picked_from_filter(self) -> None:
        """After a class is picked, the filter's text is selected and the next typing replaces it."""
        self._filter_stale = bool(self.filter_var.get())
        if self._filter_stale:
            self.filter_entry.selection_range(0, "end")
            self.filter_entry.icursor("end")

    def _palette_clicked(self, event=None) -> None:
        sel = self.palette_list.curselection()
        if sel and sel[0] < len(self.visible_classes):
            self.app.select_class(self.visible_classes[sel[0]])
            self._picked_from_filter()

    def menu_for(self, c: int) -> tk.Menu:
        """The menu a right click on class ``c`` opens: draw with it, leave out the photos with it, emphasise it
        (``app.select_class``, ``app.exclude_class``, ``app.emphasise_class``; disabled when
        ``app.refine_options`` lacks ``weights``)."""
        app, name = self.app, self.app.classes[c]
        m = tk.Menu(self.palette_list, tearoff=False)
        m.add_command(label=f"Draw with {name}", command=lambda: app.select_class(c))
        m.add_command(label=f"Leave out photos with {name}", command=lambda: app.exclude_class(c))
        m.add_command(
            label=f"Emphasise {name} (counts more)",
            command=lambda: app.emphasise_class(c),
            state="normal" if "weights" in app.refine_options else "disabled",  # the index's search takes weights=
        )
        return m

    def _context_menu(self, event) -> None:
        row = self.palette_list.nearest(event.y)
        if 0 <= row < len(self.visible_classes):
            self.menu_for(self.visible_classes[row]).tk_popup(event.x_root, event.y_root)

    def _filter_key(self, event):
        # A widget binding, run before the Entry's own: after a pick, a typed character starts a new filter.
        if not self._filter_stale or event.state & (_CONTROL | _ALT):
            return None
        if event.char and event.char.isprintable():
            self._filter_stale = False
            self.filter_var.set("")
        elif event.keysym in ("BackSpace", "Delete", "Left", "Right", "Home", "End"):
            self._filter_stale = False  # the user edits the old text
        return None

    def _filter_focus(self, event=None) -> None:
        if self._filter_stale:  # after the click's own handling (which clears the selection), select the text
            self.filter_entry.after_idle(self._picked_from_filter)

    def _filter_return(self, event=None):
        app = self.app
        text = self.filter_var.get().strip()
        if not text:
            app.canvas.focus_set()
            return "break"
        c = best_match(text, app.classes)
        if c is None:
            self._picked_from_filter()  # typing replaces the text that matched nothing
            app.show_error(
                f"No class matches \u201c{text}\u201d; still drawing {app.classes[app.current_class]}."
                " Type another name (Escape clears the filter)."
            )
            return "break"
        app.select_class(c)
        self._picked_from_filter()
        app.canvas.focus_set()
        return "break"

    def _filter_escape(self, event=None):
        self._filter_stale = False
        self.filter_var.set("")
        self.app.canvas.focus_set()
        return "break"
