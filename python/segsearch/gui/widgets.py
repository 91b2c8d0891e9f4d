"""The sketch tool's small widgets: tooltips, one-line labels that cut their text with an ellipsis instead of
widening the window, the status bar, and the result cells; plus the text fitting they use (pure functions
taking a ``measure(text) -> pixels`` callable, e.g. a Tk font's ``measure``).
"""

from __future__ import annotations

import logging
import math
import tkinter as tk
import tkinter.font as tkfont
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps, ImageTk

__all__ = [
    "ELLIPSIS",
    "MARK_COLOURS",
    "ElidedLabel",
    "ResultCell",
    "StatusBar",
    "Tooltip",
    "elide_end",
    "elide_middle",
    "explain_shares",
    "hex_colour",
    "one_line",
    "text_colour",
    "wrap_lines",
]

log = logging.getLogger("segsearch.gui")

ELLIPSIS = "…"
Measure = Callable[[str], int]
_BREAK_AFTER = " _-./\\"  # where a wrapped file name prefers to break


def hex_colour(rgb) -> str:
    """``(r, g, b)`` -> ``"#rrggbb"``."""
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def text_colour(rgb) -> str:
    """Black or white, whichever reads better on the background ``rgb``."""
    r, g, b = (int(v) for v in rgb)
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def one_line(text) -> str:
    """``text`` with every run of whitespace (newlines included) turned into one space."""
    return " ".join(str(text).split())


def _longest(n: int, fits: Callable[[int], bool]) -> int:
    """The largest k in 0..n with fits(k), assuming fits is monotone (true up to some k); 0 if none."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def elide_end(text: str, width: float, measure: Measure) -> str:
    """``text`` if it fits in ``width`` pixels, else its longest prefix that fits with an ellipsis after it."""
    if measure(text) <= width:
        return text
    k = _longest(len(text), lambda k: measure(text[:k].rstrip() + ELLIPSIS) <= width)
    return text[:k].rstrip() + ELLIPSIS


def _cut_middle(text: str, keep: int) -> str:
    head = keep // 2  # the end of a file name (number, extension) tells more than its start
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


def elide_middle(text: str, width: float, measure: Measure) -> str:
    """``text`` if it fits in ``width`` pixels, else its start and end joined by an ellipsis, as long as fits."""
    if measure(text) <= width:
        return text
    k = _longest(len(text) - 1, lambda k: measure(_cut_middle(text, k)) <= width)
    return _cut_middle(text, k)


def _wrap(text: str, width: float, measure: Measure) -> list[str]:
    """Greedy wrap into lines of at most ``width`` pixels, breaking after a separator when one is near the end."""
    lines = []
    while text:
        k = max(1, _longest(len(text), lambda k, t=text: measure(t[:k]) <= width))
        if k < len(text):
            cut = max(text.rfind(ch, 0, k) for ch in _BREAK_AFTER) + 1
            if cut >= max(1, k // 2):
                k = cut
        lines.append(text[:k])
        text = text[k:]
    return lines


def wrap_lines(text: str, width: float, measure: Measure, max_lines: int = 2) -> list[str]:
    """``text`` wrapped into at most ``max_lines`` lines of ``width`` pixels. When it needs more, its middle is
    replaced by an ellipsis so the start and the end are still shown."""
    if max_lines < 1:
        raise ValueError(f"max_lines must be >= 1; got {max_lines}")
    lines = _wrap(text, width, measure)
    if len(lines) <= max_lines:
        return lines
    k = _longest(len(text) - 1, lambda k: len(_wrap(_cut_middle(text, k), width, measure)) <= max_lines)
    return _wrap(_cut_middle(text, k), width, measure)


class Tooltip:
    """A small window showing :attr:`text` below the pointer while it is over ``widget`` (nothing when the text
    is empty). ``window`` is the tooltip's Toplevel while it is shown; setting :attr:`text` while it is shown
    updates it (or closes it, for an empty text), so it never shows what the widget no longer is."""

    WRAP_PX = 640
    MAX_CHARS = 3000  # a longer text is cut (the status bar's messages are in the log in full)

    def __init__(self, widget: tk.Misc, text: str = ""):
        self.widget = widget
        self._text = text
        self.window: tk.Toplevel | None = None
        self.label: tk.Label | None = None
        widget.bind("<Enter>", self.show, add="+")
        for seq in ("<Leave>", "<ButtonPress>", "<Destroy>"):
            widget.bind(seq, self.hide, add="+")

    @property
    def text(self) -> str:
        """What the tooltip says."""
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        if value == self._text:
            return
        self._text = value
        if self.window is not None:
            self.show()  # shown: show the new text (or nothing) in its place

    def _shown_text(self) -> str:
        return self._text if len(self._text) <= self.MAX_CHARS else self._text[: self.MAX_CHARS] + ELLIPSIS

    def show(self, event=None) -> None:
        """Open the tooltip next to the pointer, kept on the screen."""
        self.hide()
        if not self._text:
            return
        w = self.widget
        tip = tk.Toplevel(w)
        tip.wm_overrideredirect(True)
        self.label = tk.Label(
            tip,
            text=self._shown_text(),
            justify="left",
            anchor="w",
            background="#ffffe0",
            foreground="#000000",
            relief="solid",
            borderwidth=1,
            padx=4,
            pady=2,
            wraplength=min(self.WRAP_PX, w.winfo_screenwidth() - 40),
        )
        self.label.pack()
        tip.update_idletasks()
        tw, th = tip.winfo_reqwidth(), tip.winfo_reqheight()
        px, py = w.winfo_pointerxy()
        if px < 0:  # pointer on another screen: next to the widget
            px, py = w.winfo_rootx(), w.winfo_rooty()
        x = min(max(px + 12, 0), max(w.winfo_screenwidth() - tw, 0))
        y = py + 18 if py + 18 + th <= w.winfo_screenheight() else max(py - 8 - th, 0)
        tip.wm_geometry(f"+{x}+{y}")
        self.window = tip

    def hide(self, event=None) -> None:
        """Close the tooltip if it is open."""
        if self.window is not None:
            try:
                self.window.destroy()
            except tk.TclError:
                pass
            self.window = self.label = None


class ElidedLabel(tk.Label):
    """A one-line label that never asks for more room than ``width`` characters (default 1, so its packer
    decides its width), showing as much of its text as fits: cut at the end (``elide="end"``) or in the middle
    (``"middle"``) with an ellipsis. When it is cut, the full text is in a tooltip."""

    def __init__(self, master: tk.Misc, text: str = "", *, elide: str = "end", **options):
        if elide not in ("end", "middle"):
            raise ValueError(f"elide must be 'end' or 'middle'; got {elide!r}")
        options.setdefault("width", 1)
        options.setdefault("anchor", "w")
        super().__init__(master, **options)
        self._elide = elide_end if elide == "end" else elide_middle
        self.font = tkfont.Font(root=self, font=self.cget("font"))
        self.tooltip = Tooltip(self)
        self.full_text = ""
        self._tooltip_text: str | None = None
        self.bind("<Configure>", lambda e: self._fit(), add="+")
        self.set_text(text)

    @property
    def shown_text(self) -> str:
        """The text on screen (cut to the label's width)."""
        return str(self.cget("text"))

    def set_text(self, text, tooltip: str | None = None) -> None:
        """Show ``text`` (whitespace runs and newlines become single spaces), cut to fit. The tooltip shows
        ``tooltip`` if given, else the full text when it is cut."""
        self.full_text = one_line(text)
        self._tooltip_text = tooltip
        self._fit()

    def available_width(self) -> int:
        """Pixels the text may use: the label's width less its padding and border."""
        pad = 2 * sum(self.winfo_pixels(self.cget(o)) for o in ("padx", "borderwidth", "highlightthickness"))
        return max(self.winfo_width() - pad, 0)

    def _fit(self) -> None:
        shown = self._elide(self.full_text, self.available_width(), self.font.measure)
        if shown != self.cget("text"):
            self.configure(text=shown)
        if self._tooltip_text is not None:
            self.tooltip.text = self._tooltip_text
        else:
            self.tooltip.text = self.full_text if shown != self.full_text else ""


class StatusBar(ElidedLabel):
    """The window's status line: one line, cut with an ellipsis at the window's width (it never widens the
    window), the full text in a tooltip, every message also logged (errors at ERROR level) to the
    ``segsearch.gui`` logger."""

    def __init__(self, master: tk.Misc, **options):
        options.setdefault("relief", "sunken")
        options.setdefault("padx", 4)
        super().__init__(master, "", elide="end", **options)
        self.error = False

    def show(self, text: str, *, error: bool = False) -> None:
        """Show ``text``; ``error=True`` shows it in red and logs it as an error."""
        self.error = bool(error)
        self.configure(foreground="#b00000" if error else "#000000")
        log.log(logging.ERROR if error else logging.INFO, "%s", text)
        self.set_text(text)


MARK_COLOURS = {"like": "#8ce99a", "unlike": "#ffa8a8"}  # a liked / unliked result (and its chip)
MARK_TEXT = {"like": "▲ liked", "unlike": "▼ unliked"}
EXPLAIN_BAR_PX = 6  # the height of the bar of class colours under a thumbnail
EXPLAIN_NAMED, EXPLAIN_BAR = 2, 3  # classes named on the explain line, and drawn in the bar


def explain_shares(hit, most: int) -> list[tuple[int, str, float]]:
    """The ``most`` largest parts of ``hit``'s explained distance (:attr:`Hit.explain`) as (class, name, share
    of the distance); [] when it has none."""
    parts = getattr(hit, "explain", None) or ()
    total = sum(p.part for p in parts)
    if total <= 0:
        return []
    return [(p.index, p.name, p.part / total) for p in parts[:most]]


class ResultCell(tk.Label):
    """One search result: its thumbnail (``thumb_size`` box, centred), with a bar of the colours of the classes
    its distance is most made of under it (an explained search: :attr:`Hit.explain`, the colours from
    ``palette``), then ``rank. d=distance``, then the file name, whole (wrapped on up to two lines) or, when
    longer, cut in the middle, then the two largest classes of the distance with their shares, then the caption
    words matched, "(query)" for the query photo's own result (which is also framed) and the like / unlike
    mark (in light green / red). The full path and the distance's largest classes are in a tooltip. The cell has
    a fixed size, so the results grid never moves."""

    NAME_LINES = 2

    def __init__(self, master: tk.Misc, *, thumb_size: tuple[int, int], query_colour: str, palette=None, **options):
        options.setdefault("font", ("Helvetica", 9))
        super().__init__(
            master,
            text="",
            compound="top",
            justify="center",
            anchor="n",
            cursor="hand2",
            relief="flat",
            borderwidth=1,
            **options,
        )
        self.thumb_size = (int(thumb_size[0]), int(thumb_size[1]))
        self.palette = palette
        self.font = tkfont.Font(root=self, font=self.cget("font"))
        self.configure(
            width=self.thumb_size[0] + 8,
            height=self.thumb_size[1] + EXPLAIN_BAR_PX + (3 + self.NAME_LINES) * self.font.metrics("linespace") + 10,
        )
        self.text_width = self.thumb_size[0] + 2
        self.query_colour = query_colour
        self.background = self.cget("background")
        box = (self.thumb_size[0], self.thumb_size[1] + EXPLAIN_BAR_PX)
        self.blank_image = ImageTk.PhotoImage(Image.new("RGB", box, "#eeeeee"), master=self)
        self.image = self.blank_image  # keep a reference: Tk does not
        self.configure(image=self.blank_image)
        self.tooltip = Tooltip(self)

    def caption(self, hit, *, is_query: bool = False, mark: str | None = None) -> list[str]:
        """The caption lines for ``hit``: rank and distance, the file name, the distance's largest classes, then
        words matched, (query) and the like / unlike mark."""
        fit = self.font.measure
        head = f"{hit.rank}." + ("" if math.isnan(hit.distance) else f" d={hit.distance:.2f}")
        extras = []
        if hit.text_score is not None:
            extras.append(f"words={hit.text_score}")
        if is_query:
            extras.append("(query)")
        if mark is not None:
            extras.append(MARK_TEXT[mark])
        name = Path(str(hit.id)).name or str(hit.id)
        lines = [elide_end(head, self.text_width, fit)] + wrap_lines(name, self.text_width, fit, self.NAME_LINES)
        shares = explain_shares(hit, EXPLAIN_NAMED)
        if shares:
            lines.append(elide_end(" ".join(f"{n} {s:.0%}" for _, n, s in shares), self.text_width, fit))
        if extras:
            lines.append(elide_end("  ".join(extras), self.text_width, fit))
        return lines

    def _thumbnail(self, image: Image.Image | None, hit=None):
        w, h = self.thumb_size
        box = Image.new("RGBA", (w, h + EXPLAIN_BAR_PX), (0, 0, 0, 0))  # transparent: the cell's colour shows
        if image is None:
            box.paste(Image.new("RGBA", self.thumb_size, "#eeeeee"), (0, 0))
        else:
            im = ImageOps.contain(image, self.thumb_size).convert("RGBA")
            box.paste(im, ((w - im.width) // 2, (h - im.height) // 2))
        x = 0
        shares = explain_shares(hit, EXPLAIN_BAR) if self.palette is not None else []
        for c, _, share in shares:  # the classes' shares of the distance, as a bar of their colours
            x1 = min(w, x + max(1, round(share * w)))
            rgb = tuple(int(v) for v in self.palette[c % len(self.palette)])
            box.paste(Image.new("RGBA", (x1 - x, EXPLAIN_BAR_PX - 1), rgb + (255,)), (x, h + 1))
            x = x1
        return ImageTk.PhotoImage(box, master=self)

    def show(self, hit, image: Image.Image | None, *, is_query: bool = False, mark: str | None = None) -> None:
        """Show ``hit`` with its thumbnail ``image`` (a PIL image, None: a grey box); the query photo's own
        result is framed, a liked or unliked one (``mark``: "like", "unlike") framed in light green or red."""
        self.image = self._thumbnail(image, hit)
        framed = is_query or mark is not None
        self.configure(
            image=self.image,
            text="\n".join(self.caption(hit, is_query=is_query, mark=mark)),
            relief="solid" if framed else "ridge",
            borderwidth=3 if framed else 1,
            background=self.query_colour if is_query else MARK_COLOURS[mark] if mark else self.background,
        )
        d = "" if math.isnan(hit.distance) else f"\ndistance {hit.distance:.4g}"
        why = "".join(f"\n  {n}: {s:.0%} of it" for _, n, s in explain_shares(hit, 5))
        marked = {None: "", "like": "\nliked: more like this", "unlike": "\nunliked: fewer like this"}[mark]
        self.tooltip.text = f"{hit.rank}. {hit.path}{d}{why}" + ("\nthe query photo" if is_query else "") + marked

    def clear(self) -> None:
        """An empty cell."""
        self.image = self.blank_image
        self.configure(image=self.blank_image, text="", relief="flat", borderwidth=1, background=self.background)
        self.tooltip.text = ""
