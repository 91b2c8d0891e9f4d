// Exact distances over block maps: the whole index (exact search) or each query's candidates (re-ranking).
#include <algorithm>
#include <vector>

#include "core.hpp"
#include "kernels.hpp"
#include "topk.hpp"

namespace segsearch {

namespace {

// One query made ready for photo after photo: its classes' maps dense, each padded to nb * kMapBlock values, and
// per class the entry it has in the query (-1: the class does not count).
struct DenseQuery {
    std::vector<float> rows;     // entries x (nb * kMapBlock)
    std::vector<int32_t> entry;  // C
    double base = 0.0;           // sum over the entries of ||q_c||^2 / w: a photo without blocks is this far
};

DenseQuery make_dense(const SparseQuery& sq, int C, int64_t padded, double inv_pw) {
    DenseQuery dq;
    dq.rows.assign(sq.classes.size() * padded, 0.0f);
    dq.entry.assign(C, -1);
    for (size_t e = 0; e < sq.classes.size(); ++e) {
        dq.entry[sq.classes[e]] = static_cast<int32_t>(e);
        for (int64_t t = sq.offsets[e]; t < sq.offsets[e + 1]; ++t) dq.rows[e * padded + sq.pix[t]] = sq.val[t];
        dq.base += inv_pw * sq.qnorm2[e];
    }
    return dq;
}

// sum of v^2 over a block: an integer (<= 64 * 255^2), the same on every level and in any order.
inline int32_t sum_squares(const uint8_t* p) {
    int32_t s = 0;
    for (int j = 0; j < kMapBlock; ++j) s += static_cast<int32_t>(p[j]) * p[j];
    return s;
}

// The distance of photo i (see BlockMaps): base + sum over the photo's classes that count, in class order, of
// w ||x_c||^2 - 2 q_c.x_c, each class's dot summed block by block in block order. A class with no block adds
// nothing (its map is 0), so the result is the same whichever zero blocks were stored.
class BlockDistance {
  public:
    BlockDistance(const BlockMaps& maps, double pw) : m_(maps), pw_(pw), kern_(active_kernels()) {
        nb_ = (static_cast<int64_t>(maps.D) + kMapBlock - 1) / kMapBlock;
    }
    int64_t padded() const { return nb_ * kMapBlock; }

    float operator()(const DenseQuery& dq, int64_t i) const {
        constexpr double kScale = 1.0 / 255.0, kScale2 = kScale * kScale;
        const int64_t b0 = m_.ptr[i], b1 = m_.ptr[i + 1];
        if (b0 < 0 || b1 < b0 || b1 > m_.n_blocks)
            throw DamagedData("the exact maps are damaged: block offsets out of range");
        double d = dq.base;
        int64_t t = b0;
        while (t < b1) {
            const int64_t c = m_.index[t] / nb_;  // one division per class the photo shows
            if (c >= m_.C) throw DamagedData("the exact maps are damaged: a block index past the classes");
            const int64_t first = c * nb_, next = first + nb_;
            int64_t u = t;
            for (; u < b1 && m_.index[u] < next; ++u)  // the class's blocks: [t, u)
                if (m_.index[u] < first) throw DamagedData("the exact maps are damaged: block index not increasing");
            const int32_t e = dq.entry[c];
            if (e >= 0) {
                const float* row = dq.rows.data() + e * padded();
                double dot = 0.0;
                int64_t sq = 0;
                for (; t < u; ++t) {
                    const uint8_t* p = m_.blocks + t * kMapBlock;
                    dot += kern_.dot_u8(row + (m_.index[t] - first) * kMapBlock, p, kMapBlock);
                    sq += sum_squares(p);
                }
                d += pw_ * kScale2 * static_cast<double>(sq) - 2.0 * kScale * dot;
            }
            t = u;
        }
        return static_cast<float>(d < 0.0 ? 0.0 : d);  // a squared distance: rounding must not make it negative
    }

  private:
    const BlockMaps& m_;
    double pw_;
    const Kernels& kern_;
    int64_t nb_ = 0;
};

std::vector<DenseQuery> dense_queries(const std::vector<SparseQuery>& queries, const BlockMaps& maps, int64_t padded,
                                      float photo_weight) {
    if (!(photo_weight > 0.0f && photo_weight <= 1.0f)) throw InvalidArgument("photo_weight must be in (0, 1]");
    std::vector<DenseQuery> out;
    for (const SparseQuery& sq : queries) out.push_back(make_dense(sq, maps.C, padded, 1.0 / photo_weight));
    return out;
}

}  // namespace

void scan_blocks(const BlockMaps& maps, const std::vector<SparseQuery>& queries, int64_t k, const Subset& subset,
                 int threads, const InterruptCheck& interrupt, TopKOut out, float photo_weight) {
    if (k <= 0) throw InvalidArgument("k must be >= 1");
    const int nq = static_cast<int>(queries.size());
    if (nq == 0) return;
    const BlockDistance dist(maps, photo_weight);
    const std::vector<DenseQuery> dq = dense_queries(queries, maps, dist.padded(), photo_weight);
    if (subset.ids) {
        auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
            for (int64_t t = s; t < e; ++t)
                for (int q = 0; q < nq; ++q) heaps[q].push(dist(dq[q], subset.ids[t]), subset.ids[t]);
        };
        run_topk(subset.n_ids, 64, nq, k, threads, interrupt, fn, out);
        return;
    }
    auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
        for (int64_t i = s; i < e; ++i) {
            if (subset.mask && !subset.mask[i]) continue;
            for (int q = 0; q < nq; ++q) heaps[q].push(dist(dq[q], i), i);
        }
    };
    run_topk(maps.n, 64, nq, k, threads, interrupt, fn, out);
}

void rerank_blocks(const BlockMaps& maps, const std::vector<SparseQuery>& queries, const int64_t* candidates,
                   const int64_t* counts, int64_t stride, int64_t k, int threads, const InterruptCheck& interrupt,
                   TopKOut out, float photo_weight) {
    if (k <= 0) throw InvalidArgument("k must be >= 1");
    const int nq = static_cast<int>(queries.size());
    if (nq == 0) return;
    // Each query's candidates in increasing position: TopK keeps the earlier photo of equal distances only if
    // positions come in order.
    std::vector<int64_t> sorted(static_cast<size_t>(nq) * stride, -1);
    for (int q = 0; q < nq; ++q) {
        if (counts[q] < 0 || counts[q] > stride) throw InvalidArgument("candidate counts must be in 0..R");
        int64_t* row = sorted.data() + q * stride;
        std::copy(candidates + q * stride, candidates + q * stride + counts[q], row);
        std::sort(row, row + counts[q]);
        for (int64_t j = 0; j < counts[q]; ++j)
            if (row[j] < 0 || row[j] >= maps.n || (j && row[j] == row[j - 1]))
                throw InvalidArgument("candidates must be distinct positions < n");
    }
    const BlockDistance dist(maps, photo_weight);
    const std::vector<DenseQuery> dq = dense_queries(queries, maps, dist.padded(), photo_weight);
    auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
        for (int64_t t = s; t < e; ++t) {
            const int q = static_cast<int>(t / stride);
            if (t - q * stride < counts[q]) heaps[q].push(dist(dq[q], sorted[t]), sorted[t]);
        }
    };
    run_topk(static_cast<int64_t>(nq) * stride, 16, nq, k, threads, interrupt, fn, out);
}

}  // namespace segsearch
