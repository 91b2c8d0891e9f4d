// Asymmetric-distance scan over column-major uint8 codes, for a batch of queries.
#include <limits>
#include <vector>

#include "core.hpp"
#include "kernels.hpp"
#include "topk.hpp"

namespace segsearch {

void scan_pq(const Codes& codes, int K, const float* luts, const std::vector<std::vector<int32_t>>& classes,
             int64_t k, const Subset& subset, int threads, const InterruptCheck& interrupt, TopKOut out) {
    const int C = codes.C;
    const int nq = static_cast<int>(classes.size());
    if (k <= 0) throw InvalidArgument("k must be >= 1");
    if (nq == 0) return;
    // Per query: base = sum_c LUT[c][default_c]; delta[c][k] = LUT[c][k] - LUT[c][default_c], so that
    // codes equal to the default (most of them, in real data) add nothing and can be skipped.
    // Rows are 256 wide whatever K is: a code >= K (a damaged index) reads +inf, never out of bounds.
    constexpr int kRow = 256;
    if (K < 1 || K > kRow) throw InvalidArgument("K must be in 1..256");
    // One delta row per (query, class summed), in the order of classes[q]; first[q] is query q's first row.
    std::vector<int64_t> first(nq + 1, 0);
    for (int q = 0; q < nq; ++q) first[q + 1] = first[q] + static_cast<int64_t>(classes[q].size());
    std::vector<float> delta(static_cast<size_t>(first[nq]) * kRow);
    std::vector<float> base(nq);
    for (int q = 0; q < nq; ++q) {
        double b = 0.0;
        for (size_t e = 0; e < classes[q].size(); ++e) {
            const int32_t c = classes[q][e];
            if (c < 0 || c >= C) throw InvalidArgument("class index out of range");
            const float* row = luts + (static_cast<int64_t>(q) * C + c) * K;
            float* d = delta.data() + (first[q] + static_cast<int64_t>(e)) * kRow;
            const float z = row[codes.defaults[c]];
            b += z;
            for (int j = 0; j < K; ++j) d[j] = row[j] - z;
            std::fill(d + K, d + kRow, std::numeric_limits<float>::infinity());
            d[codes.defaults[c]] = 0.0f;
        }
        base[q] = static_cast<float>(b);
    }
    const Kernels& kern = active_kernels();

    if (subset.ids) {
        auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
            for (int q = 0; q < nq; ++q) {
                const float* dq = delta.data() + first[q] * kRow;
                const size_t nc = classes[q].size();
                for (int64_t t = s; t < e; ++t) {
                    const int64_t i = subset.ids[t];
                    float d = base[q];
                    for (size_t u = 0; u < nc; ++u)
                        d += dq[u * kRow + codes.data[classes[q][u] * codes.stride + i]];
                    heaps[q].push(d, i);
                }
            }
        };
        run_topk(subset.n_ids, 4096, nq, k, threads, interrupt, fn, out);
        return;
    }

    constexpr int64_t kBlock = 2048;  // dist buffer of 8 KB stays in L1
    auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
        float dist[kBlock];
        int32_t scratch[kBlock];
        const int64_t len = e - s;
        for (int q = 0; q < nq; ++q) {
            const float* dq = delta.data() + first[q] * kRow;
            std::fill(dist, dist + len, base[q]);
            for (size_t u = 0; u < classes[q].size(); ++u) {
                const int32_t c = classes[q][u];
                auto acc = (codes.dense && codes.dense[c]) ? kern.accumulate_dense : kern.accumulate_sparse;
                acc(codes.data + c * codes.stride + s, len, codes.defaults[c], dq + u * kRow, dist);
            }
            heaps[q].push_block(dist, s, len, subset.mask, kern.below, scratch);
        }
    };
    run_topk(codes.n, kBlock, nq, k, threads, interrupt, fn, out);
}

}  // namespace segsearch
