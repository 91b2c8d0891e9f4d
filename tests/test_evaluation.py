"""segsearch.evaluation against hand-computed values."""

import math

import numpy as np
import pytest

from segsearch.evaluation import (
    class_histogram,
    dcg,
    grade,
    histogram_distances,
    label_grid,
    layout_agreement,
    ndcg,
    query_maps,
)


def test_dcg_by_hand():
    # (2^3 - 1)/log2(2) + (2^2 - 1)/log2(3) + 0 = 7 + 3/1.5849625
    assert dcg([3, 2, 0], 3) == pytest.approx(7 + 3 / math.log2(3))
    assert dcg([3, 2, 0], 1) == pytest.approx(7.0)
    assert dcg([], 5) == 0.0


def test_ndcg_known_rankings():
    assert ndcg([3, 2, 1, 0], [0, 1, 2, 3], k=4) == pytest.approx(1.0)
    # the best item second: (7 / log2(3)) / 7
    assert ndcg([0, 3], [3, 0], k=2) == pytest.approx(1 / math.log2(3))
    # worst-first ranking of grades 1, 0: (0 + 1/log2 3) / 1
    assert ndcg([0, 1], [1, 0], k=2) == pytest.approx(1 / math.log2(3))
    # cutoff: only the first k ranks count, the ideal takes the k best of all candidates
    assert ndcg([1, 3, 3], [3, 3, 1, 0], k=1) == pytest.approx(1 / 7)
    assert math.isnan(ndcg([0, 0], [0, 0, 0], k=2))
    with pytest.raises(ValueError):
        ndcg([1], [1], k=0)


def test_label_grid_mode_ignore_and_ties():
    lab = np.array([[0, 0, 1, 1], [0, 1, 1, 1], [2, 2, 3, 3], [2, 11, 11, 11]])
    np.testing.assert_array_equal(label_grid(lab, 2, 12, ignore=[11]), [[0, 1], [2, 3]])
    # ties go to the lowest label; a cell of ignored pixels only is -1
    lab = np.array([[1, 0, 11, 11], [0, 1, 11, 11]])
    np.testing.assert_array_equal(label_grid(lab, 2, 12, ignore=[11]), [[0, -1], [0, -1]])
    # uneven sizes: rows 0..2 -> cells 0,0,1 (i * n // h)
    lab = np.array([[5], [5], [7]])
    np.testing.assert_array_equal(label_grid(lab, 1, 8), [[5]])
    with pytest.raises(ValueError):
        label_grid(np.array([[0, 12]]), 1, 12)


def test_layout_agreement_and_grades():
    a = np.array([[0, 1], [2, 3]])
    assert layout_agreement(a, np.array([[0, 1], [2, 2]])) == pytest.approx(0.75)
    assert layout_agreement(a, np.array([[0, -1], [2, 2]])) == pytest.approx(2 / 3)
    # background 0: cells that are background in both are left out
    fg_a, fg_b = np.array([[0, 0], [5, 0]]), np.array([[0, 5], [5, 0]])
    assert layout_agreement(fg_a, fg_b, background=0) == pytest.approx(0.5)
    assert layout_agreement(np.zeros((2, 2), int), np.zeros((2, 2), int), background=0) == 0.0
    # broadcasting (Q, 1, n, n) x (1, N, n, n) -> (Q, N)
    grids = np.stack([a, np.array([[0, 1], [2, 2]]), np.full((2, 2), 9)])
    m = layout_agreement(grids[:, None], grids[None])
    np.testing.assert_allclose(m, [[1, 0.75, 0], [0.75, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(grade([0.49, 0.5, 0.65, 0.7, 0.9], (0.5, 0.6, 0.7)), [0, 1, 2, 3, 3])
    with pytest.raises(ValueError):
        grade([0.5], (0.6, 0.5))


def test_class_histogram_baseline():
    p = np.zeros((2, 3, 2, 2))
    p[0, 0] = 1.0  # image 0: all class 0
    p[1, 1, 0] = p[1, 2, 1] = 1.0  # image 1: top row class 1, bottom row class 2
    h = class_histogram(p)
    np.testing.assert_allclose(h, [[1, 0, 0], [0, 0.5, 0.5]])
    np.testing.assert_allclose(histogram_distances(h[1], h), [1 + 0.25 + 0.25, 0])
    np.testing.assert_allclose(histogram_distances(h[1], h, classes=[1]), [0.25, 0])
    # the same histogram whatever the layout: flipping image 1 upside down changes nothing
    assert histogram_distances(class_histogram(p[1, :, ::-1]), h[1:]) == pytest.approx([0.0])


def test_query_maps():
    lab = np.array([[1, -1], [-1, 0]])
    q = query_maps(lab, 3)
    np.testing.assert_array_equal(q[:, 0, 0], [0, 1, 0])
    np.testing.assert_array_equal(q[:, 0, 1], [0, 0, 0])
    np.testing.assert_array_equal(q[:, 1, 1], [1, 0, 0])
    probs = np.full((3, 2, 2), 1 / 3)
    q = query_maps(lab, 3, probs)
    np.testing.assert_allclose(q[:, 0, 1], [1 / 3] * 3)  # unspecified: the photo's maps
    np.testing.assert_array_equal(q[:, 0, 0], [0, 1, 0])
    np.testing.assert_allclose(q.sum(0), 1.0)
