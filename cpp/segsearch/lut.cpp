// Query vectors in sparse form and the LUTs of the three query kinds.
#include <cmath>
#include <vector>

#include "core.hpp"
#include "kernels.hpp"

namespace segsearch {

SparseQuery make_sparse_query(const QuerySpec& q, int C, int D, float eps) {
    if (C <= 0 || D <= 0) throw InvalidArgument("number of classes and pixels must be positive");
    if (!(eps >= 0.0f) || !std::isfinite(eps)) throw InvalidArgument("eps must be a finite number >= 0");
    const bool has_probs = q.kind != QueryKind::Sketch;
    const bool has_labels = q.kind != QueryKind::Image;
    if (has_probs && !q.probs) throw InvalidArgument("this query kind needs probability maps");
    if (has_labels && !q.labels) throw InvalidArgument("this query kind needs a label map");

    SparseQuery sq;
    sq.offsets.push_back(0);
    if (q.kind == QueryKind::Sketch) {
        // Group labelled pixels by class; only drawn classes count.
        std::vector<std::vector<int32_t>> by_class(C);
        for (int j = 0; j < D; ++j) {
            const int32_t l = q.labels[j];
            if (l < -1 || l >= C) throw InvalidArgument("label out of range: use -1 (unspecified) or 0..C-1");
            if (l >= 0) by_class[l].push_back(j);
        }
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
    if (has_labels)
        for (int j = 0; j < D; ++j)
            if (q.labels[j] < -1 || q.labels[j] >= C)
                throw InvalidArgument("label out of range: use -1 (unspecified) or 0..C-1");
    for (int c = 0; c < C; ++c) {
        const float* p = q.probs + static_cast<int64_t>(c) * D;
        double n2 = 0.0;
        for (int j = 0; j < D; ++j) {
            float v = p[j];
            if (has_labels && q.labels[j] >= 0) v = (q.labels[j] == c) ? 1.0f : 0.0f;
            n2 += static_cast<double>(v) * v;
            if (v > eps || (has_labels && q.labels[j] == c)) {
                sq.pix.push_back(j);
                sq.val.push_back(v);
            }
        }
        sq.classes.push_back(c);
        sq.qnorm2.push_back(n2);
        sq.offsets.push_back(static_cast<int64_t>(sq.pix.size()));
    }
    return sq;
}

void build_lut(const Codebook& cb, const SparseQuery& sq, float* lut) {
    const Kernels& kern = active_kernels();
    const int K = cb.K;
    // Two-level accumulation: float partial sums over chunks of pixels, then double.
    constexpr int kChunk = 64;
    std::vector<float> part(K);
    std::vector<double> dot(K);
    for (size_t e = 0; e < sq.classes.size(); ++e) {
        const int c = sq.classes[e];
        const float* base = cb.data + static_cast<int64_t>(c) * cb.D * K;
        std::fill(dot.begin(), dot.end(), 0.0);
        for (int64_t s = sq.offsets[e]; s < sq.offsets[e + 1]; s += kChunk) {
            const int64_t stop = std::min<int64_t>(s + kChunk, sq.offsets[e + 1]);
            std::fill(part.begin(), part.end(), 0.0f);
            for (int64_t t = s; t < stop; ++t)
                kern.axpy(sq.val[t], base + static_cast<int64_t>(sq.pix[t]) * K, part.data(), K);
            for (int k = 0; k < K; ++k) dot[k] += part[k];
        }
        const float* an = cb.norms + static_cast<int64_t>(c) * K;
        float* row = lut + static_cast<int64_t>(c) * K;
        for (int k = 0; k < K; ++k) {
            const double v = sq.qnorm2[e] - 2.0 * dot[k] + static_cast<double>(an[k]);
            row[k] = static_cast<float>(v > 0.0 ? v : 0.0);
        }
    }
}

}  // namespace segsearch
