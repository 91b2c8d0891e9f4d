// Exact distances over uint8-quantized probability maps (the paper's "without PQ").
#include <vector>

#include "core.hpp"
#include "kernels.hpp"
#include "topk.hpp"

namespace segsearch {

void scan_exact(const ExactMaps& maps, const std::vector<SparseQuery>& queries, int64_t k, const Subset& subset,
                int threads, const InterruptCheck& interrupt, TopKOut out, float photo_weight) {
    if (k <= 0) throw InvalidArgument("k must be >= 1");
    if (!(photo_weight > 0.0f && photo_weight <= 1.0f)) throw InvalidArgument("photo_weight must be in (0, 1]");
    const double pw = photo_weight, inv_pw = 1.0 / pw;
    const int nq = static_cast<int>(queries.size());
    if (nq == 0) return;
    const int C = maps.C, D = maps.D;
    constexpr double kScale = 1.0 / 255.0;
    // Dense copies of each query's vectors for classes whose support is large.
    std::vector<std::vector<float>> dense(nq);
    for (int q = 0; q < nq; ++q) {
        const SparseQuery& sq = queries[q];
        dense[q].assign(sq.classes.size() * static_cast<size_t>(D), 0.0f);
        for (size_t e = 0; e < sq.classes.size(); ++e)
            for (int64_t t = sq.offsets[e]; t < sq.offsets[e + 1]; ++t) dense[q][e * D + sq.pix[t]] = sq.val[t];
    }
    const Kernels& kern = active_kernels();
    constexpr int kChunk = 512;

    auto image_dist = [&](int q, int64_t i) {
        const SparseQuery& sq = queries[q];
        const uint8_t* img = maps.maps + i * C * static_cast<int64_t>(D);
        double d = 0.0;
        for (size_t e = 0; e < sq.classes.size(); ++e) {
            const int c = sq.classes[e];
            const uint8_t* p = img + static_cast<int64_t>(c) * D;
            const int64_t s0 = sq.offsets[e], s1 = sq.offsets[e + 1];
            double dot = 0.0;
            if ((s1 - s0) * 4 > D) {
                const float* qd = dense[q].data() + e * D;
                for (int j = 0; j < D; j += kChunk) dot += kern.dot_u8(qd + j, p + j, std::min(kChunk, D - j));
            } else {
                for (int64_t t = s0; t < s1; ++t) dot += static_cast<double>(sq.val[t]) * p[sq.pix[t]];
            }
            d += inv_pw * sq.qnorm2[e] - 2.0 * kScale * dot + pw * maps.norms2[i * C + c];
        }
        return static_cast<float>(d < 0.0 ? 0.0 : d);  // a squared distance: rounding must not make it negative
    };

    if (subset.ids) {
        auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
            for (int64_t t = s; t < e; ++t)
                for (int q = 0; q < nq; ++q) heaps[q].push(image_dist(q, subset.ids[t]), subset.ids[t]);
        };
        run_topk(subset.n_ids, 16, nq, k, threads, interrupt, fn, out);
        return;
    }
    auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
        for (int64_t i = s; i < e; ++i) {
            if (subset.mask && !subset.mask[i]) continue;
            for (int q = 0; q < nq; ++q) heaps[q].push(image_dist(q, i), i);
        }
    };
    run_topk(maps.n, 16, nq, k, threads, interrupt, fn, out);
}

}  // namespace segsearch
