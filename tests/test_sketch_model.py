"""The drawing tool's sketch model: strokes, erase, flood fill, undo/redo, resizing, overlay (no display)."""

import numpy as np
import pytest

from segsearch.engine.query import Query, resize_nearest
from segsearch.network.palette import make_palette
from segsearch.sketch.model import Sketch


def brute_region(labels, row, col):
    """Reference 4-connected flood fill (BFS over pixels)."""
    h, w = labels.shape
    v = labels[row, col]
    mask = np.zeros_like(labels, bool)
    todo = [(row, col)]
    mask[row, col] = True
    while todo:
        r, c = todo.pop()
        for nr, nc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= nr < h and 0 <= nc < w and not mask[nr, nc] and labels[nr, nc] == v:
                mask[nr, nc] = True
                todo.append((nr, nc))
    return mask


def test_blank():
    s = Sketch(32)
    assert s.shape == (32, 32)
    assert s.is_empty() and s.classes_drawn() == []
    assert (s.labels == -1).all()
    assert not s.can_undo and not s.can_redo
    with pytest.raises(ValueError):
        s.labels[0, 0] = 3  # read-only view


def test_stroke_is_a_round_brush_along_the_polyline():
    s = Sketch(64)
    assert s.stroke([(10, 20), (50, 20)], cls=3, radius=4)
    lab = s.labels
    yy, xx = np.mgrid[:64, :64]
    # distance of each pixel centre to the segment y=20, 10<=x<=50
    px = np.clip(xx, 10, 50)
    expect = (xx - px) ** 2 + (yy - 20) ** 2 <= 16
    assert ((lab == 3) == expect).all()
    assert s.classes_drawn() == [3]
    # a point stroke is a disc; radius 0 paints one pixel
    s2 = Sketch(16)
    s2.stroke([(5, 7)], cls=0, radius=0)
    assert np.argwhere(s2.labels == 0).tolist() == [[7, 5]]


def test_stroke_outside_the_canvas_is_clipped_and_records_nothing():
    s = Sketch(16)
    assert not s.stroke([(-50, -50), (-40, -60)], cls=1, radius=2)
    assert not s.can_undo
    s.stroke([(-5, 8), (30, 8)], cls=1, radius=1)
    assert (s.labels[8] == 1).all()


def test_interactive_stroke_is_one_undo_entry():
    s = Sketch(32)
    s.begin_stroke(2, 1.5)
    box = s.extend_stroke([(4, 4)])
    assert box is not None and box[0] <= 4 < box[2] and box[1] <= 4 < box[3]
    s.extend_stroke([(10, 4), (10, 20)])
    assert s.stroking
    assert s.end_stroke()
    assert not s.stroking
    assert (s.labels[4, 4:11] == 2).all() and (s.labels[4:21, 10] == 2).all()
    assert s.undo()
    assert s.is_empty() and not s.can_undo


def test_erase_sets_unspecified():
    s = Sketch(32)
    s.stroke([(0, 10), (31, 10)], cls=5, radius=3)
    s.erase([(16, 10)], radius=2)
    assert s.labels[10, 16] == -1
    assert s.labels[10, 2] == 5


def test_fill_matches_a_reference_flood_fill():
    rng = np.random.default_rng(0)
    for trial in range(20):
        lab = rng.integers(-1, 3, size=(24, 31)).astype(np.int32)
        s = Sketch(24, 31)
        s.set_labels(lab)
        r, c = int(rng.integers(24)), int(rng.integers(31))
        target = 7
        assert s.fill(c, r, target)
        expect = lab.copy()
        expect[brute_region(lab, r, c)] = target
        assert (s.labels == expect).all(), trial


def test_fill_region_bounded_by_a_stroke():
    s = Sketch(32)
    s.stroke([(0, 12), (31, 12)], cls=1, radius=1)  # a horizontal wall
    assert s.fill(5, 2, 4)  # fills only above the wall
    lab = s.labels
    assert (lab[:11] == 4).all()
    assert (lab[11:14] == 1).all()
    assert (lab[14:] == -1).all()
    assert not s.fill(5, 2, 4)  # same class: nothing to do
    assert not s.fill(100, 2, 3)  # outside
    s.undo()
    assert (s.labels[:11] == -1).all()


def test_undo_redo_clear_and_history_bound():
    s = Sketch(16, max_history=3)
    for c in range(5):
        s.stroke([(c * 3, 0), (c * 3, 15)], cls=c, radius=0)
    snap = s.labels.copy()
    assert s.undo() and s.undo() and s.undo()
    assert not s.undo()  # only 3 entries are kept
    assert s.classes_drawn() == [0, 1]
    assert s.redo() and s.redo() and s.redo() and not s.redo()
    assert (s.labels == snap).all()
    assert s.clear() and s.is_empty()
    assert not s.clear()  # clearing a blank sketch records nothing
    s.undo()
    assert (s.labels == snap).all()
    # a new action drops the redo list
    s.undo()
    assert s.can_redo
    s.stroke([(1, 1)], cls=9, radius=0)
    assert not s.can_redo


def test_start_over_is_one_step_with_the_owners_context():
    s = Sketch(16)
    assert s.context is None
    s.stroke([(2, 2), (12, 2)], cls=1, radius=1)
    drawn = s.labels.copy()
    s.start_over("photo A", "photo B")
    assert s.is_empty() and s.context == "photo B" and not s.can_redo
    s.stroke([(2, 12)], cls=3, radius=1)
    assert s.undo() and s.context == "photo B"  # a drawing step leaves the context alone
    assert s.undo()  # one undo: the strokes and the context come back together
    assert (s.labels == drawn).all() and s.context == "photo A"
    assert s.redo() and s.is_empty() and s.context == "photo B"
    # recorded even on a blank sketch (a new photo is a step of its own)
    blank = Sketch(8)
    blank.start_over(None, "photo C")
    assert blank.can_undo and blank.undo() and blank.context is None and blank.is_empty()


def test_change_context_is_one_step_that_keeps_the_strokes():
    s = Sketch(16)
    s.stroke([(2, 2), (12, 2)], cls=1, radius=1)
    drawn = s.labels.copy()
    s.change_context("no likes", "liked A")
    assert s.context == "liked A" and (s.labels == drawn).all() and not s.can_redo
    s.stroke([(2, 12)], cls=3, radius=1)
    assert s.undo() and s.context == "liked A"  # the stroke
    assert s.undo() and s.context == "no likes" and (s.labels == drawn).all()  # the context alone
    assert s.undo() and s.is_empty() and s.context == "no likes"  # the first stroke
    assert s.redo() and s.redo() and s.context == "liked A" and (s.labels == drawn).all()


def test_labels_at_matches_resize_nearest_and_builds_a_query():
    s = Sketch(256)
    s.stroke([(0, 20), (255, 20)], cls=2, radius=20)  # sky on top
    s.fill(128, 200, 6)  # the rest: road
    small = s.labels_at(16)
    assert small.shape == (16, 16) and small.dtype == np.int32
    assert (small == resize_nearest(np.asarray(s.labels), 16)).all()
    assert (small[0] == 2).all() and (small[-1] == 6).all()
    q = Query.sketch(small)
    _, _, labels = q.resolve(num_classes=8, size=16)
    assert labels.shape == (256,)


def test_set_labels_resizes_and_validates():
    s = Sketch(8)
    lab = np.full((4, 4), -1, np.int32)
    lab[:2] = 1
    s.set_labels(lab)
    assert (s.labels[:4] == 1).all() and (s.labels[4:] == -1).all()
    with pytest.raises(ValueError):
        s.set_labels(np.full((4, 4), -2))
    with pytest.raises(ValueError):
        s.set_labels(np.zeros((4, 4), np.float32))


def test_to_rgba_overlay():
    pal = make_palette(5)
    s = Sketch(8)
    s.stroke([(0, 0), (7, 0)], cls=3, radius=0)
    rgba = s.to_rgba(pal, alpha=0.5)
    assert rgba.shape == (8, 8, 4) and rgba.dtype == np.uint8
    assert (rgba[0, :, :3] == pal[3]).all() and (rgba[0, :, 3] == 128).all()
    assert (rgba[1:] == 0).all()
    with pytest.raises(ValueError):
        s.to_rgba(pal, alpha=2)


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: s.stroke([(1, 1)], cls=-2, radius=1),
        lambda s: s.stroke([(1, 1)], cls=1.5, radius=1),
        lambda s: s.stroke([(1, 1)], cls=1, radius=-1),
        lambda s: s.stroke([(1, 1, 1)], cls=1, radius=1),
        lambda s: s.stroke([(np.nan, 1)], cls=1, radius=1),
        lambda s: s.extend_stroke([(1, 1)]),
        lambda s: Sketch(0),
    ],
)
def test_bad_input_raises_value_error(bad):
    with pytest.raises(ValueError):
        bad(Sketch(8))


def test_letterbox_keeps_the_aspect_ratio_centred():
    from segsearch.sketch.model import letterbox

    assert letterbox(64, 48, 512, 512) == (0, 64, 512, 384)  # wide: bars above and below
    assert letterbox(48, 64, 512, 512) == (64, 0, 384, 512)  # tall: bars left and right
    assert letterbox(100, 100, 512, 512) == (0, 0, 512, 512)
    assert letterbox(960, 720, 400, 300) == (0, 0, 400, 300)
    assert letterbox(10000, 1, 512, 512) == (0, 255, 512, 1)  # never thinner than a pixel
    for bad in ((0, 48, 512, 512), (64, -1, 512, 512), (64.5, 48, 512, 512), (64, 48, 512, True)):
        with pytest.raises(ValueError, match="whole number"):
            letterbox(*bad)


def test_sketch_view_maps_the_grid_onto_the_photo_area():
    from segsearch.sketch.model import SketchView

    v = SketchView((256, 256), (0, 64, 512, 384))
    assert v.scale == (2.0, 1.5)
    assert v.to_sketch(0, 64) == (0.0, 0.0) and v.to_sketch(512, 448) == (256.0, 256.0)
    assert v.to_sketch(100, 160) == (50.0, 64.0)
    assert v.to_canvas(*v.to_sketch(123, 321)) == (123.0, 321.0)
    assert v.contains(10, 64) and not v.contains(10, 63) and not v.contains(10, 448)
    x, y = v.to_sketch(256, 20)  # on the bar: outside the sketch
    assert not 0 <= y < 256
    s = Sketch(256)
    assert not s.fill(x, y, 1) and s.is_empty()
    with pytest.raises(ValueError):
        SketchView((256, 256), (0, 0, 0, 10))
    with pytest.raises(ValueError):
        SketchView((256,), (0, 0, 10, 10))
