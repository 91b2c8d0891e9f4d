// Asymmetric-distance scan over column-major uint8 codes, for a batch of queries: the float scan, and the
// quantized scan that gives the same results faster where a SIMD byte-table kernel exists.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core.hpp"
#include "kernels.hpp"
#include "topk.hpp"

namespace segsearch {
namespace {

// Rows are 256 wide whatever K is: a code >= K (a damaged index) reads +inf, never out of bounds.
constexpr int kRow = 256;
constexpr int64_t kBlock = 2048;  // images per block: a float dist buffer of 8 KB stays in L1

std::atomic<int64_t> stat_queries{0}, stat_reranked{0}, stat_float_blocks{0};  // quantized_scan_stats()

// The quantized scan, for one query. Its delta rows d_u (float, d_u[default] = 0) become byte tables
// t_u[v] = round((d_u[v] - lo_u) / step), lo_u = min_v d_u[v], with one step for all rows: step = max_u range_u
// / L and L = min(255, 65535 / nc), so a sum of nc entries fits uint16 (entries >= K, the +inf ones, are L).
// With Q = sum_u t_u[code_u] and S the exact real sum base + sum_u d_u[code_u]:
//     |S - (offset + step * Q)| <= nc * step / 2,        offset = base + sum_u lo_u,
// and the float distance F the float scan computes (base, then + d_u in the classes' order) is within
// gamma * magnitude of S (sequential float summation of nc + 1 terms; gamma = (nc + 2) 2^-23 > nc 2^-24 /
// (1 - nc 2^-24); magnitude = |base| + sum_u max_v |d_u[v]|). So with margin >= both,
//     Q > (thr - offset + margin) / step   implies   F > thr,
// and an image whose Q is above threshold(thr) cannot enter a top-k heap whose threshold is thr (a push
// needs F < thr). The others are re-ranked with F itself, computed in the float scan's order, so distances
// and ties are bit-identical to the float scan.
struct QuantQuery {
    std::vector<uint8_t> tables;  // nc x 256
    double offset = 0, step = 1, margin = 0;
    // A block whose candidates exceed this fraction of its images (ties at the threshold, or a threshold
    // still loose) takes the float sums instead: re-ranking them would cost more.
    double max_candidates = 0.25;
    std::vector<uint8_t> defaults, dense;  // per class summed, for the float sums

    // The largest Q that may still belong to an image with F < thr; -1: none.
    int32_t threshold(float thr) const {
        if (!(thr < std::numeric_limits<float>::infinity())) return 65535;
        const double x = std::floor((static_cast<double>(thr) - offset + margin) / step);
        return x < 0 ? -1 : x >= 65535 ? 65535 : static_cast<int32_t>(x);
    }
};

// Builds the tables of one query (delta rows dq, nc x kRow). False when the bound cannot be trusted or
// does not prune: non-finite values, sums near float overflow, too many classes for uint16 sums.
bool quantize(const float* dq, int nc, int K, float base, QuantQuery& qq) {
    if (nc < 1 || !std::isfinite(base)) return false;
    const int L = std::min(255, 65535 / nc);
    if (L < 16) return false;
    std::vector<double> lo(nc);
    double offset = base, range = 0, magnitude = std::fabs(static_cast<double>(base));
    for (int u = 0; u < nc; ++u) {
        const float* d = dq + static_cast<int64_t>(u) * kRow;
        double mn = std::numeric_limits<double>::infinity(), mx = -mn;
        for (int v = 0; v < K; ++v) {
            if (!std::isfinite(d[v])) return false;
            mn = std::min<double>(mn, d[v]);
            mx = std::max<double>(mx, d[v]);
        }
        lo[u] = mn;
        offset += mn;
        range = std::max(range, mx - mn);
        magnitude += std::max(std::fabs(mn), std::fabs(mx));
    }
    if (!(magnitude < 1e30)) return false;  // keeps every partial sum far from float overflow
    const double step = range > 0 ? range / L : 1.0;
    qq.tables.assign(static_cast<size_t>(nc) * kRow, static_cast<uint8_t>(L));
    for (int u = 0; u < nc; ++u)
        for (int v = 0; v < K; ++v) {
            const double t = std::nearbyint((dq[static_cast<int64_t>(u) * kRow + v] - lo[u]) / step);
            qq.tables[static_cast<size_t>(u) * kRow + v] = static_cast<uint8_t>(std::min<double>(L, std::max(0.0, t)));
        }
    qq.offset = offset;
    qq.step = step;
    // Half a step per class (the 1e-6 covers the double arithmetic of the tables), twice the float
    // summation bound (the other half covers the double arithmetic of offset and threshold()).
    const double gamma = (nc + 2) * std::ldexp(1.0, -23);
    qq.margin = nc * step * (0.5 + 1e-6) + 2.0 * gamma * magnitude;
    return true;
}

// Cost per code of the float scan of one class, relative to the plain loop (accumulate_dense): the
// skipping loop costs little where nearly all codes are the class's default and more than the plain loop
// past about 40% of others (branch misses). Fitted on the development machine (N = 82,783, K = 256).
double float_cost(bool dense, double nondefault) {
    return dense ? 1.0 : std::min(0.06 + 14.0 * nondefault, 0.45 + 1.5 * nondefault);
}

// The fraction of class c's codes that differ from its default, from up to 16 runs of 64 codes spread over
// the items (or every 1/1024th listed position).
double nondefault_fraction(const Codes& codes, int c, const Subset& subset, int64_t n_items) {
    constexpr int64_t kRuns = 16, kRun = 64;
    const uint8_t* col = codes.data + c * codes.stride;
    const uint8_t d = codes.defaults[c];
    int64_t seen = 0, other = 0;
    if (subset.ids || n_items <= kRuns * kRun) {
        seen = std::min(n_items, kRuns * kRun);
        for (int64_t t = 0; t < seen; ++t) {
            const int64_t j = t * n_items / seen;
            other += col[subset.ids ? subset.ids[j] : j] != d;
        }
    } else {
        for (int64_t r = 0; r < kRuns; ++r) {
            const uint8_t* run = col + (n_items - kRun) * r / (kRuns - 1);
            for (int64_t t = 0; t < kRun; ++t) other += run[t] != d;
        }
        seen = kRuns * kRun;
    }
    return seen ? static_cast<double>(other) / static_cast<double>(seen) : 0.0;
}

// Per-thread buffers of one block.
struct BlockBuffers {
    float dist[kBlock];
    int32_t scratch[kBlock];
    uint16_t acc[kBlock];
};

// One block of len images for one query: image j has the codes cols[u][j] and the position pos(j).
// Leaves the heap exactly as the float scan's push_block would, computing float distances only for the
// images the quantized sums cannot rule out (or for all, when too many are left).
template <class Pos>
void quantized_block(const QuantQuery& qq, const float* dq, float base, const uint8_t* const* cols, int nc, int K,
                     int64_t len, Pos pos, const uint8_t* mask, const Kernels& kern, TopK& heap, BlockBuffers& buf) {
    uint16_t* acc = buf.acc;
    kern.accumulate_u8(cols, nc, len, qq.tables.data(), K, acc);
    int64_t reranked = 0;
    auto exact = [&](int64_t j) {  // the float scan's sum, in its order
        ++reranked;
        float d = base;
        for (int u = 0; u < nc; ++u) d += dq[static_cast<int64_t>(u) * kRow + cols[u][j]];
        return d;
    };
    int64_t j = 0;
    for (; j < len && !heap.full(); ++j) {  // not full yet: take everything
        const int64_t i = pos(j);
        if (!mask || mask[i]) heap.push(exact(j), i);
    }
    float thr = heap.threshold();
    int32_t tq = qq.threshold(thr);
    const int64_t m =
        j < len && tq >= 0 ? kern.at_most_u16(acc + j, len - j, static_cast<uint16_t>(tq), buf.scratch) : 0;
    if (static_cast<double>(m) > qq.max_candidates * static_cast<double>(len - j)) {
        // The float scan's sums for the rest of the block, a class at a time (the same sums as exact()).
        float* dist = buf.dist + j;
        std::fill(dist, dist + (len - j), base);
        for (int u = 0; u < nc; ++u)
            (qq.dense[u] ? kern.accumulate_dense : kern.accumulate_sparse)(cols[u] + j, len - j, qq.defaults[u],
                                                                           dq + static_cast<int64_t>(u) * kRow, dist);
        heap.push_block_at(
            dist, len - j, [&](int64_t t) { return pos(j + t); }, mask, kern.below, buf.scratch);
        stat_float_blocks.fetch_add(1, std::memory_order_relaxed);
    } else {
        for (int64_t t = 0; t < m && tq >= 0; ++t) {
            const int64_t jj = j + buf.scratch[t];
            if (acc[jj] > tq) continue;  // the threshold has fallen since
            const int64_t i = pos(jj);
            if (mask && !mask[i]) continue;
            heap.push(exact(jj), i);
            if (heap.threshold() != thr) {
                thr = heap.threshold();
                tq = qq.threshold(thr);
            }
        }
    }
    stat_reranked.fetch_add(reranked, std::memory_order_relaxed);
}

}  // namespace

QuantizedScanStats quantized_scan_stats() {
    return {stat_queries.load(), stat_reranked.load(), stat_float_blocks.load()};
}

void scan_pq(const Codes& codes, int K, const float* luts, const std::vector<std::vector<int32_t>>& classes, int64_t k,
             const Subset& subset, int threads, const InterruptCheck& interrupt, TopKOut out, QuantizedScan quantized) {
    const int C = codes.C;
    const int nq = static_cast<int>(classes.size());
    if (k <= 0) throw InvalidArgument("k must be >= 1");
    if (nq == 0) return;
    // Per query: base = sum_c LUT[c][default_c]; delta[c][k] = LUT[c][k] - LUT[c][default_c], so that
    // codes equal to the default (most of them, in real data) add nothing and can be skipped.
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
    const int64_t n_items = subset.ids ? subset.n_ids : codes.n;

    // Which queries take the quantized scan: Auto where the float scan's estimated cost (from the sampled
    // share of non-default codes) exceeds the byte-table kernel's by kRerankAllowance per class (for the
    // re-ranking, and for blocks that fall back to float sums), N is large enough to repay building the tables
    // (and, for listed positions, gathering the codes) and k is small against N.
    // Measured on real-derived codes (CamVid network maps, N = 82,783, 1 thread, AVX-512 VBMI): the quantized
    // scan cost 0.17 (C = 60) and 0.22 (C = 151) float-scan units per class, re-ranking included.
    constexpr double kRerankAllowance = 0.07;
    std::vector<QuantQuery> quant(nq);
    std::vector<char> use_quant(nq, 0);
    bool any_quant = false;
    const double qcost = K <= 16 ? kern.quantized_cost_small : kern.quantized_cost_large;
    const bool may_pay = qcost > 0 && n_items >= 4 * kBlock && k * 32 <= n_items;
    for (int q = 0; q < nq && n_items > 0; ++q) {
        if (quantized == QuantizedScan::Off || (quantized == QuantizedScan::Auto && !may_pay)) break;
        const int nc = static_cast<int>(classes[q].size());
        QuantQuery& qq = quant[q];
        double fcost = 0.0;
        for (int32_t c : classes[q]) {
            qq.defaults.push_back(codes.defaults[c]);
            qq.dense.push_back(codes.dense && codes.dense[c]);
            fcost += float_cost(qq.dense.back(), nondefault_fraction(codes, c, subset, n_items));
        }
        if (quantized == QuantizedScan::Auto && fcost < (qcost + kRerankAllowance) * nc) continue;
        // A re-rank costs about two plain-loop lookups per class.
        qq.max_candidates = std::max(0.02, fcost / (2.0 * std::max(nc, 1)));
        use_quant[q] = quantize(delta.data() + first[q] * kRow, nc, K, base[q], qq);
        any_quant |= use_quant[q] != 0;
        stat_queries += use_quant[q];
    }
    size_t max_nc = 0;
    for (const auto& c : classes) max_nc = std::max(max_nc, c.size());

    if (subset.ids) {
        // The quantized queries read the codes of their classes gathered into contiguous rows, once per
        // block for all of them: slot[c] is class c's row (-1: none).
        std::vector<int32_t> slot(C, -1), gathered;
        for (int q = 0; q < nq; ++q)
            if (use_quant[q])
                for (int32_t c : classes[q])
                    if (slot[c] < 0) {
                        slot[c] = static_cast<int32_t>(gathered.size());
                        gathered.push_back(c);
                    }
        auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
            const int64_t len = e - s;
            thread_local std::vector<uint8_t> rows;
            if (any_quant) {
                rows.resize(gathered.size() * static_cast<size_t>(kBlock));
                for (size_t g = 0; g < gathered.size(); ++g) {
                    const uint8_t* col = codes.data + gathered[g] * codes.stride;
                    uint8_t* row = rows.data() + g * kBlock;
                    for (int64_t t = 0; t < len; ++t) row[t] = col[subset.ids[s + t]];
                }
            }
            BlockBuffers buf;
            std::vector<const uint8_t*> cols(max_nc);
            for (int q = 0; q < nq; ++q) {
                const float* dq = delta.data() + first[q] * kRow;
                const size_t nc = classes[q].size();
                if (use_quant[q]) {
                    for (size_t u = 0; u < nc; ++u) cols[u] = rows.data() + slot[classes[q][u]] * kBlock;
                    quantized_block(
                        quant[q], dq, base[q], cols.data(), static_cast<int>(nc), K, len,
                        [&](int64_t j) { return subset.ids[s + j]; }, nullptr, kern, heaps[q], buf);
                    continue;
                }
                for (int64_t t = s; t < e; ++t) {
                    const int64_t i = subset.ids[t];
                    float d = base[q];
                    for (size_t u = 0; u < nc; ++u) d += dq[u * kRow + codes.data[classes[q][u] * codes.stride + i]];
                    heaps[q].push(d, i);
                }
            }
        };
        run_topk(subset.n_ids, kBlock, nq, k, threads, interrupt, fn, out);
        return;
    }

    auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
        BlockBuffers buf;
        std::vector<const uint8_t*> cols(max_nc);
        const int64_t len = e - s;
        for (int q = 0; q < nq; ++q) {
            const float* dq = delta.data() + first[q] * kRow;
            if (use_quant[q]) {
                const size_t nc = classes[q].size();
                for (size_t u = 0; u < nc; ++u) cols[u] = codes.data + classes[q][u] * codes.stride + s;
                quantized_block(
                    quant[q], dq, base[q], cols.data(), static_cast<int>(nc), K, len, [s](int64_t j) { return s + j; },
                    subset.mask, kern, heaps[q], buf);
                continue;
            }
            std::fill(buf.dist, buf.dist + len, base[q]);
            for (size_t u = 0; u < classes[q].size(); ++u) {
                const int32_t c = classes[q][u];
                auto acc = (codes.dense && codes.dense[c]) ? kern.accumulate_dense : kern.accumulate_sparse;
                acc(codes.data + c * codes.stride + s, len, codes.defaults[c], dq + u * kRow, buf.dist);
            }
            heaps[q].push_block(buf.dist, s, len, subset.mask, kern.below, buf.scratch);
        }
    };
    run_topk(codes.n, kBlock, nq, k, threads, interrupt, fn, out);
}

}  // namespace segsearch
