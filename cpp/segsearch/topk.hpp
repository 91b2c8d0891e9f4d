// Bounded top-k selection and the parallel block driver shared by the PQ and exact scans.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

#include "core.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace segsearch {

// Keeps the k smallest (distance, position) pairs; ties go to the smaller position. Positions must be
// pushed in increasing order (each thread scans its blocks in order), so an equal distance never
// displaces a kept one.
class TopK {
  public:
    explicit TopK(int64_t k) : k_(k) {}
    float threshold() const { return thr_; }
    bool full() const { return static_cast<int64_t>(heap_.size()) >= k_; }
    void push(float d, int64_t i) {
        if (static_cast<int64_t>(heap_.size()) < k_) {
            heap_.emplace_back(d, i);
            std::push_heap(heap_.begin(), heap_.end());
            if (static_cast<int64_t>(heap_.size()) == k_) thr_ = heap_.front().first;
        } else if (d < thr_) {
            std::pop_heap(heap_.begin(), heap_.end());
            heap_.back() = {d, i};
            std::push_heap(heap_.begin(), heap_.end());
            thr_ = heap_.front().first;
        }
    }
    // dist[0..len) belong to positions i0..i0+len; mask (if any) is indexed by position. `below` is the
    // SIMD filter of the active kernels; `scratch` holds len ints.
    void push_block(const float* dist, int64_t i0, int64_t len, const uint8_t* mask,
                    int64_t (*below)(const float*, int64_t, float, int32_t*), int32_t* scratch) {
        push_block_at(
            dist, len, [i0](int64_t j) { return i0 + j; }, mask, below, scratch);
    }
    // The same with dist[j] at position pos(j) (increasing in j).
    template <class Pos>
    void push_block_at(const float* dist, int64_t len, Pos pos, const uint8_t* mask,
                       int64_t (*below)(const float*, int64_t, float, int32_t*), int32_t* scratch) {
        int64_t j = 0;
        for (; j < len && static_cast<int64_t>(heap_.size()) < k_; ++j)  // not full yet: take everything
            if (!mask || mask[pos(j)]) push(dist[j], pos(j));
        if (j == len) return;
        const int64_t m = below(dist + j, len - j, thr_, scratch);
        for (int64_t t = 0; t < m; ++t) {
            const int64_t i = pos(j + scratch[t]);
            if (mask && !mask[i]) continue;
            push(dist[j + scratch[t]], i);
        }
    }
    std::vector<std::pair<float, int64_t>>& items() { return heap_; }

  private:
    int64_t k_;
    float thr_ = std::numeric_limits<float>::infinity();
    std::vector<std::pair<float, int64_t>> heap_;
};

// Runs block_fn(begin, end, heaps) over [0, n_items) in blocks of `block` items on `threads` threads,
// each thread with its own nq heaps; then merges them into `out`. Checks `interrupt` from the
// calling thread every ~50 ms and throws Interrupted if it says stop.
template <class BlockFn>
void run_topk(int64_t n_items, int64_t block, int nq, int64_t k, int threads, const InterruptCheck& interrupt,
              BlockFn block_fn, TopKOut out) {
    if (threads <= 0) threads = default_threads();
    const int64_t n_blocks = (n_items + block - 1) / block;
    if (threads > n_blocks) threads = static_cast<int>(std::max<int64_t>(1, n_blocks));
    std::vector<std::vector<TopK>> heaps(threads, std::vector<TopK>(nq, TopK(k)));
    std::atomic<bool> stop{false};
    std::exception_ptr error;
    auto last = std::chrono::steady_clock::now();

#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
#endif
    for (int64_t b = 0; b < n_blocks; ++b) {
        if (stop.load(std::memory_order_relaxed)) continue;
#if defined(_OPENMP)
        const int t = omp_get_thread_num();
#else
        const int t = 0;
#endif
        try {
            block_fn(b * block, std::min(n_items, (b + 1) * block), heaps[t]);
            if (t == 0 && interrupt) {
                const auto now = std::chrono::steady_clock::now();
                if (now - last > std::chrono::milliseconds(50)) {
                    last = now;
                    if (interrupt()) stop.store(true);
                }
            }
        } catch (...) {
#if defined(_OPENMP)
#pragma omp critical(segsearch_error)
#endif
            if (!error) error = std::current_exception();
            stop.store(true);
        }
    }
    if (error) std::rethrow_exception(error);
    if (stop.load()) throw Interrupted();

    for (int q = 0; q < nq; ++q) {
        std::vector<std::pair<float, int64_t>> all;
        for (int t = 0; t < threads; ++t) {
            auto& items = heaps[t][q].items();
            all.insert(all.end(), items.begin(), items.end());
        }
        std::sort(all.begin(), all.end());
        const int64_t m = std::min<int64_t>(k, static_cast<int64_t>(all.size()));
        for (int64_t r = 0; r < m; ++r) {
            out.dists[q * k + r] = all[r].first;
            out.ids[q * k + r] = all[r].second;
        }
        out.counts[q] = m;
    }
}

}  // namespace segsearch
