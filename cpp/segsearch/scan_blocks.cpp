// Exact distances over block maps: the whole index (exact search) or each query's candidates (re-ranking).
#include <algorithm>
#include <vector>

#include "core.hpp"
#include "kernels.hpp"
#include "topk.hpp"

namespace segsearch {

static_assert(kMapBlock == 64, "the kernels' block_sums read blocks of 64 values");

namespace {

// One query made ready for photo after photo: its classes' rows (make_dense_query), per class the entry it has in
// the query (-1: the class does not count) and the distance of a photo without blocks.
struct PreparedQuery {
    DenseQuery dense;
    std::vector<int32_t> entry;  // C
    double base = 0.0;           // sum over the entries of ||q_c||^2 / w
};

PreparedQuery prepare(const QuerySpec& spec, int C, int D, int64_t padded, double inv_pw) {
    PreparedQuery pq;
    pq.dense = make_dense_query(spec, C, D, padded);
    pq.entry.assign(C, -1);
    for (size_t e = 0; e < pq.dense.classes.size(); ++e) {
        pq.entry[pq.dense.classes[e]] = static_cast<int32_t>(e);
        pq.base += inv_pw * pq.dense.qnorm2[e];
    }
    return pq;
}

// Distances of a group of photos, computed class by class (the query's row of a class, n * n floats, stays in cache
// while every photo of the group reads its blocks of that class): for each photo base + the sum over the classes
// that count, in class order, of w ||x_c||^2 - 2 q_c.x_c, both sums over the photo's blocks of class c by the
// kernels' block_sums (the same on every SIMD level). A class without blocks adds nothing (its map is 0). The
// distance of a photo does not depend on the group it is computed in.
class BlockDistance {
  public:
    BlockDistance(const BlockMaps& maps, double pw) : m_(maps), pw_(pw), kern_(active_kernels()) {
        nb_ = (static_cast<int64_t>(maps.D) + kMapBlock - 1) / kMapBlock;
    }
    int64_t padded() const { return nb_ * kMapBlock; }

    // out[g] = the distance of photo ids[g], g < n.
    void operator()(const PreparedQuery& dq, const int64_t* ids, int64_t n, float* out) const {
        constexpr double kScale = 1.0 / 255.0, kScale2 = kScale * kScale;
        cur_.resize(n);
        end_.resize(n);
        acc_.assign(n, dq.base);
        for (int64_t g = 0; g < n; ++g) {
            cur_[g] = m_.ptr[ids[g]];
            end_[g] = m_.ptr[ids[g] + 1];
            if (cur_[g] < 0 || end_[g] < cur_[g] || end_[g] > m_.n_blocks)
                throw DamagedData("the exact maps are damaged: block offsets out of range");
        }
        for (size_t e = 0; e < dq.dense.classes.size(); ++e) {  // classes in increasing order
            const int64_t first = dq.dense.classes[e] * nb_, next = first + nb_;
            const float* row = dq.dense.rows.data() + e * padded();
            for (int64_t g = 0; g < n; ++g) {
                int64_t t = cur_[g];
                const int64_t b1 = end_[g];
                while (t < b1 && m_.index[t] < first) ++t;  // other classes' blocks
                int64_t u = t;
                while (u < b1 && m_.index[u] >= first && m_.index[u] < next) ++u;  // this class's: [t, u)
                if (u > t) {
                    float dot = 0.0f;
                    int64_t sq = 0;
                    kern_.block_sums(row, m_.blocks + t * kMapBlock, m_.index + t, static_cast<uint32_t>(first), u - t,
                                     &dot, &sq);
                    acc_[g] += pw_ * kScale2 * static_cast<double>(sq) - 2.0 * kScale * static_cast<double>(dot);
                }
                cur_[g] = u;
            }
        }
        for (int64_t g = 0; g < n; ++g)  // a squared distance: rounding must not make it negative
            out[g] = static_cast<float>(acc_[g] < 0.0 ? 0.0 : acc_[g]);
    }

  private:
    const BlockMaps& m_;
    double pw_;
    const Kernels& kern_;
    int64_t nb_ = 0;
    mutable std::vector<int64_t> cur_, end_;
    mutable std::vector<double> acc_;
};

std::vector<PreparedQuery> prepare_all(const std::vector<QuerySpec>& queries, const BlockMaps& maps,
                                       float photo_weight) {
    if (!(photo_weight > 0.0f && photo_weight <= 1.0f)) throw InvalidArgument("photo_weight must be in (0, 1]");
    const int64_t padded = (static_cast<int64_t>(maps.D) + kMapBlock - 1) / kMapBlock * kMapBlock;
    std::vector<PreparedQuery> out;
    for (const QuerySpec& q : queries) out.push_back(prepare(q, maps.C, maps.D, padded, 1.0 / photo_weight));
    return out;
}

// Photos whose distances are computed together (class by class), and the block of run_topk.
constexpr int64_t kGroup = 64;

}  // namespace

void scan_blocks(const BlockMaps& maps, const std::vector<QuerySpec>& queries, int64_t k, const Subset& subset,
                 int threads, const InterruptCheck& interrupt, TopKOut out, float photo_weight) {
    if (k <= 0) throw InvalidArgument("k must be >= 1");
    const int nq = static_cast<int>(queries.size());
    if (nq == 0) return;
    const std::vector<PreparedQuery> dq = prepare_all(queries, maps, photo_weight);
    // Each thread's block of photos: the positions it scans, their distances per query, pushed in order.
    auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
        const BlockDistance dist(maps, photo_weight);
        std::vector<int64_t> ids;
        for (int64_t t = s; t < e; ++t) {
            const int64_t i = subset.ids ? subset.ids[t] : t;
            if (!subset.mask || subset.mask[i]) ids.push_back(i);
        }
        std::vector<float> d(ids.size());
        for (int q = 0; q < nq; ++q) {
            dist(dq[q], ids.data(), static_cast<int64_t>(ids.size()), d.data());
            for (size_t g = 0; g < ids.size(); ++g) heaps[q].push(d[g], ids[g]);
        }
    };
    run_topk(subset.ids ? subset.n_ids : maps.n, kGroup, nq, k, threads, interrupt, fn, out);
}

void rerank_blocks(const BlockMaps& maps, const std::vector<QuerySpec>& queries, const int64_t* candidates,
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
    const std::vector<PreparedQuery> dq = prepare_all(queries, maps, photo_weight);
    // Groups of one query's candidates (a group never spans two queries: kGroup divides the padded stride).
    const int64_t padded_stride = (stride + kGroup - 1) / kGroup * kGroup;
    auto fn = [&](int64_t s, int64_t e, std::vector<TopK>& heaps) {
        const BlockDistance dist(maps, photo_weight);
        std::vector<float> d(kGroup);
        for (int64_t g0 = s; g0 < e; g0 += kGroup) {
            const int q = static_cast<int>(g0 / padded_stride);
            const int64_t j0 = g0 - q * padded_stride, j1 = std::min<int64_t>(counts[q], j0 + kGroup);
            if (j1 <= j0) continue;
            const int64_t* ids = sorted.data() + q * stride + j0;
            dist(dq[q], ids, j1 - j0, d.data());
            for (int64_t j = 0; j < j1 - j0; ++j) heaps[q].push(d[j], ids[j]);
        }
    };
    run_topk(static_cast<int64_t>(nq) * padded_stride, kGroup, nq, k, threads, interrupt, fn, out);
}

}  // namespace segsearch
