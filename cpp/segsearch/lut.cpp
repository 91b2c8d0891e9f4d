// Query vectors in sparse form and the LUTs of the three query kinds.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core.hpp"
#include "kernels.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace segsearch {

namespace {

void check_spec(const QuerySpec& q, int C, int D) {
    if (C <= 0 || D <= 0) throw InvalidArgument("number of classes and pixels must be positive");
    if (q.kind != QueryKind::Sketch && !q.probs) throw InvalidArgument("this query kind needs probability maps");
    if (q.kind != QueryKind::Image) {
        if (!q.labels) throw InvalidArgument("this query kind needs a label map");
        for (int j = 0; j < D; ++j)
            if (q.labels[j] < -1 || q.labels[j] >= C)
                throw InvalidArgument("label out of range: use -1 (unspecified) or 0..C-1");
    }
}

// A sketch's pixels grouped by class; only drawn classes count.
std::vector<std::vector<int32_t>> drawn_pixels(const QuerySpec& q, int C, int D) {
    std::vector<std::vector<int32_t>> by_class(C);
    for (int j = 0; j < D; ++j)
        if (q.labels[j] >= 0) by_class[q.labels[j]].push_back(j);
    return by_class;
}

// q_c of an image or image + sketch query, class by class: v, q_c as the distance sees it, and tv, the values the
// eps cut tests. With class weights the photo's maps are reweighted as the index's were, and the cut tests the
// photo's own probabilities (drawn pixels: their 0 / 1), so that reweighting does not pull the faint traces of rare
// classes into the support (eps = 0 keeps the same pixels either way: the weights are > 0). Drawn pixels override
// the photo's maps.
class ClassValues {
  public:
    ClassValues(const QuerySpec& q, int C, int D)
        : q_(q),
          D_(D),
          labels_(q.kind != QueryKind::Image),
          vbuf_(labels_ || q.class_weights ? D : 0),
          tbuf_(q.class_weights && labels_ ? D : 0) {
        if (!q.class_weights) return;
        // Class-prior correction: 1 / sum_c w_c p_c(j) per pixel (0 where the pixel has no mass).
        for (int c = 0; c < C; ++c)
            if (!(q.class_weights[c] > 0.0f) || !std::isfinite(q.class_weights[c]))
                throw InvalidArgument("class weights must be finite and > 0");
        std::vector<float> z(D, 0.0f);  // float: at most C positive terms, a relative error of ~C * 2^-24
        for (int c = 0; c < C; ++c) {
            const float* v = q.probs + static_cast<int64_t>(c) * D;
            const float w = q.class_weights[c];
            for (int j = 0; j < D; ++j) z[j] += w * v[j];
        }
        inv_z_.resize(D);
        for (int j = 0; j < D; ++j) inv_z_[j] = z[j] > 0.0f ? 1.0f / z[j] : 0.0f;
    }
    // (v, tv) of class c, valid until the next call.
    std::pair<const float*, const float*> operator()(int c) {
        const float* v = q_.probs + static_cast<int64_t>(c) * D_;
        const float* tv = v;
        if (q_.class_weights && labels_) {
            const float w = q_.class_weights[c];
            for (int j = 0; j < D_; ++j) {
                const int32_t l = q_.labels[j];
                const float drawn = l == c ? 1.0f : 0.0f;
                vbuf_[j] = l < 0 ? (w * v[j]) * inv_z_[j] : drawn;
                tbuf_[j] = l < 0 ? v[j] : drawn;
            }
            return {vbuf_.data(), tbuf_.data()};
        }
        if (q_.class_weights) {
            const float w = q_.class_weights[c];
            for (int j = 0; j < D_; ++j) vbuf_[j] = (w * v[j]) * inv_z_[j];
            return {vbuf_.data(), tv};
        }
        if (labels_) {
            for (int j = 0; j < D_; ++j) {
                const int32_t l = q_.labels[j];
                vbuf_[j] = l < 0 ? v[j] : (l == c ? 1.0f : 0.0f);
            }
            return {vbuf_.data(), vbuf_.data()};
        }
        return {v, tv};
    }

  private:
    const QuerySpec& q_;
    int D_;
    bool labels_;
    std::vector<float> vbuf_, tbuf_, inv_z_;
};

// ||v||^2 over all pixels: 8 float lanes per chunk of 512, summed in double.
double squared_norm(const float* v, int D) {
    double n2 = 0.0;
    for (int j0 = 0; j0 < D; j0 += 512) {
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        const int j1 = std::min(D, j0 + 512);
        int j = j0;
        for (; j + 8 <= j1; j += 8)
            for (int l = 0; l < 8; ++l) acc[l] += v[j + l] * v[j + l];
        for (; j < j1; ++j) acc[0] += v[j] * v[j];
        n2 += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    return n2;
}

}  // namespace

SparseQuery make_sparse_query(const QuerySpec& q, int C, int D, float eps) {
    check_spec(q, C, D);
    if (!(eps >= 0.0f) || !std::isfinite(eps)) throw InvalidArgument("eps must be a finite number >= 0");
    SparseQuery sq;
    sq.offsets.push_back(0);
    if (q.kind == QueryKind::Sketch) {
        const auto by_class = drawn_pixels(q, C, D);
        for (int c = 0; c < C; ++c) {
            if (by_class[c].empty()) continue;
            sq.classes.push_back(c);
            sq.qnorm2.push_back(static_cast<double>(by_class[c].size()));
            sq.pix.insert(sq.pix.end(), by_class[c].begin(), by_class[c].end());
            sq.val.insert(sq.val.end(), by_class[c].size(), 1.0f);
            sq.offsets.push_back(static_cast<int64_t>(sq.pix.size()));
        }
        if (sq.classes.empty()) throw InvalidArgument("the sketch is empty: draw at least one class");
        return sq;
    }
    ClassValues values(q, C, D);
    std::vector<float> valbuf(D);
    std::vector<int32_t> pixbuf(D);
    sq.classes.reserve(C);
    for (int c = 0; c < C; ++c) {
        const auto [v, tv] = values(c);
        const double n2 = squared_norm(v, D);
        // support: branch-free compaction of the pixels with tv > eps (drawn pixels of class c always)
        // (blocks of 64 pixels with nothing above eps, most of an absent class's map, are skipped)
        int m = 0;
        for (int j0 = 0; j0 < D; j0 += 64) {
            const int j1 = std::min(D, j0 + 64);
            int hits = 0;
            for (int j = j0; j < j1; ++j) hits += tv[j] > eps;
            if (hits == 0 && eps < 1.0f) continue;
            for (int j = j0; j < j1; ++j) {
                pixbuf[m] = j;
                valbuf[m] = v[j];
                m += (tv[j] > eps) | (v[j] == 1.0f);
            }
        }
        sq.classes.push_back(c);
        sq.qnorm2.push_back(n2);
        sq.pix.insert(sq.pix.end(), pixbuf.begin(), pixbuf.begin() + m);
        sq.val.insert(sq.val.end(), valbuf.begin(), valbuf.begin() + m);
        sq.offsets.push_back(static_cast<int64_t>(sq.pix.size()));
    }
    return sq;
}

DenseQuery make_dense_query(const QuerySpec& q, int C, int D, int64_t stride) {
    check_spec(q, C, D);
    if (stride < D) throw InvalidArgument("a dense query row must hold the D values");
    DenseQuery dq;
    if (q.kind == QueryKind::Sketch) {
        const auto by_class = drawn_pixels(q, C, D);
        for (int c = 0; c < C; ++c) {
            if (by_class[c].empty()) continue;
            dq.classes.push_back(c);
            dq.qnorm2.push_back(static_cast<double>(by_class[c].size()));
            dq.rows.resize(dq.rows.size() + stride, 0.0f);
            float* row = dq.rows.data() + dq.rows.size() - stride;
            for (int32_t j : by_class[c]) row[j] = 1.0f;
        }
        if (dq.classes.empty()) throw InvalidArgument("the sketch is empty: draw at least one class");
        return dq;
    }
    ClassValues values(q, C, D);
    dq.rows.assign(static_cast<size_t>(C) * stride, 0.0f);
    for (int c = 0; c < C; ++c) {
        const float* v = values(c).first;
        std::copy(v, v + D, dq.rows.data() + static_cast<int64_t>(c) * stride);
        dq.classes.push_back(c);
        dq.qnorm2.push_back(squared_norm(v, D));
    }
    return dq;
}

// If the support entries from t on cover a whole block (of one image row) with weight 1, its width.
static int64_t whole_block(const Codebook& cb, const SparseQuery& sq, int64_t t, int64_t end) {
    if ((!cb.block_sums && !cb.block_sums_u16) || sq.val[t] != 1.0f) return 0;
    const int32_t j = sq.pix[t];
    const int x = j % cb.n;
    if (x % cb.block_w) return 0;
    const int64_t w = std::min(cb.block_w, cb.n - x);
    if (t + w > end || sq.pix[t + w - 1] != j + w - 1) return 0;  // pixels are sorted and distinct
    for (int64_t u = t + 1; u < t + w; ++u)
        if (sq.val[u] != 1.0f) return 0;
    return w;
}

void build_lut(const Codebook& cb, const SparseQuery& sq, float* lut, int threads, float photo_weight) {
    if (!(photo_weight > 0.0f && photo_weight <= 1.0f)) throw InvalidArgument("photo_weight must be in (0, 1]");
    const double w = photo_weight, inv_w = 1.0 / w;
    const Kernels& kern = active_kernels();
    const int K = cb.K;
    const int n_cls = static_cast<int>(sq.classes.size());
    if (threads <= 0) threads = default_threads();
    // Spread classes over threads only when there is enough work to pay for waking them.
    if (threads > 1 && sq.pix.size() < 4096) threads = 1;
    // Two-level accumulation: float partial sums over chunks of rows, then double.
    constexpr int kChunk = 64;
    const int64_t nb = cb.block_sums || cb.block_sums_u16 ? (cb.n + cb.block_w - 1) / cb.block_w : 0;
    const bool bytes = cb.data_u8 != nullptr;  // the compact codebook: values v / 255
    const double scale = bytes ? 1.0 / 255.0 : 1.0;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) if (threads > 1)
#endif
    {
        std::vector<float> part(K);
        std::vector<double> dot(K);
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
        for (int e = 0; e < n_cls; ++e) {
            const int c = sq.classes[e];
            const int64_t first = static_cast<int64_t>(c) * cb.D * K;  // class c's rows
            std::fill(dot.begin(), dot.end(), 0.0);
            std::fill(part.begin(), part.end(), 0.0f);
            int rows = 0;  // rows added to `part` since it was last flushed into `dot`
            const int64_t s1 = sq.offsets[e + 1];
            for (int64_t t = sq.offsets[e]; t < s1;) {
                const int32_t j = sq.pix[t];
                const int64_t w = whole_block(cb, sq, t, s1);
                if (w) {  // a whole block of weight 1: its precomputed sum
                    const int64_t x = j % cb.n, blk = (j / cb.n) * nb + x / cb.block_w;
                    const int64_t at = (static_cast<int64_t>(c) * cb.n * nb + blk) * K;
                    if (bytes)
                        kern.axpy_u16(1.0f, cb.block_sums_u16 + at, part.data(), K);
                    else
                        kern.axpy(1.0f, cb.block_sums + at, part.data(), K);
                    t += w;
                } else if (bytes && rows + 4 <= kChunk && t + 4 <= s1 && !whole_block(cb, sq, t + 1, s1) &&
                           !whole_block(cb, sq, t + 2, s1) && !whole_block(cb, sq, t + 3, s1)) {
                    // four rows at once (the same sums, in the same order, as one at a time)
                    const uint8_t* x[4];
                    for (int u = 0; u < 4; ++u) x[u] = cb.data_u8 + first + static_cast<int64_t>(sq.pix[t + u]) * K;
                    if (t + 8 <= s1)
                        for (int u = 4; u < 8; ++u)
                            for (int off = 0; off < K; off += 64)
                                __builtin_prefetch(cb.data_u8 + first + static_cast<int64_t>(sq.pix[t + u]) * K + off);
                    kern.axpy4_u8(&sq.val[t], x, part.data(), K);
                    t += 4;
                    rows += 3;  // and one more below
                } else {
                    const int64_t at = first + static_cast<int64_t>(j) * K;
                    if (bytes) {
                        if (t + 4 < s1)
                            __builtin_prefetch(cb.data_u8 + first + static_cast<int64_t>(sq.pix[t + 4]) * K);
                        kern.axpy_u8(sq.val[t], cb.data_u8 + at, part.data(), K);
                    } else {
                        if (t + 4 < s1) __builtin_prefetch(cb.data + first + static_cast<int64_t>(sq.pix[t + 4]) * K);
                        kern.axpy(sq.val[t], cb.data + at, part.data(), K);
                    }
                    ++t;
                }
                if (++rows == kChunk || t == s1) {
                    for (int k = 0; k < K; ++k) dot[k] += part[k];
                    std::fill(part.begin(), part.end(), 0.0f);
                    rows = 0;
                }
            }
            const float* an = cb.norms + static_cast<int64_t>(c) * K;
            float* row = lut + static_cast<int64_t>(c) * K;
            for (int k = 0; k < K; ++k) {
                // w ||a - q/w||^2: a squared distance, so rounding must not make it negative
                const double v = inv_w * sq.qnorm2[e] - 2.0 * scale * dot[k] + w * an[k];
                row[k] = static_cast<float>(v < 0.0 ? 0.0 : v);
            }
        }
    }
}

}  // namespace segsearch
