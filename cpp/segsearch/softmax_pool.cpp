// Upsample + softmax + area pooling of a segmentation network's logits in one pass (see core.hpp).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core.hpp"
#include "kernels.hpp"

namespace segsearch {

namespace {

// Bilinear taps with align_corners=True as torch computes them (upsample_bilinear2d on the CPU): a float scale
// (in - 1) / (out - 1), source position scale * i, its floor clamped to the input and the weight of the next sample.
struct Taps {
    std::vector<int32_t> lo, hi;
    std::vector<float> frac;
};

Taps align_corners_taps(int64_t n_in, int64_t n_out) {
    Taps t;
    const float scale = n_out > 1 ? static_cast<float>(n_in - 1) / static_cast<float>(n_out - 1) : 0.0f;
    for (int64_t i = 0; i < n_out; ++i) {
        const float pos = scale * static_cast<float>(i);
        const int64_t lo = std::min<int64_t>(static_cast<int64_t>(std::floor(pos)), n_in - 1);
        t.lo.push_back(static_cast<int32_t>(lo));
        t.hi.push_back(static_cast<int32_t>(lo + (lo < n_in - 1 ? 1 : 0)));
        t.frac.push_back(std::min(std::max(pos - static_cast<float>(lo), 0.0f), 1.0f));
    }
    return t;
}

// adaptive_avg_pool2d's bins of n inputs into m outputs: bin k is [floor(k n / m), ceil((k + 1) n / m)).
int64_t bin_start(int64_t k, int64_t n, int64_t m) { return k * n / m; }
int64_t bin_end(int64_t k, int64_t n, int64_t m) { return ((k + 1) * n + m - 1) / m; }

}  // namespace

void upsample_softmax_pool(const float* logits, int64_t B, int64_t h, int64_t w, int64_t C, int64_t H, int64_t W,
                           int64_t size, float* out, int threads) {
    if (B < 0 || h < 1 || w < 1 || C < 1 || H < 1 || W < 1 || size < 1)
        throw InvalidArgument("upsample_softmax_pool: sizes must be positive");
    const Taps ty = align_corners_taps(h, H), tx = align_corners_taps(w, W);
    std::vector<int32_t> col_lo(W), col_hi(W);  // the column bins holding each output column
    for (int64_t x = 0; x < W; ++x) {
        int64_t lo = 0, hi = size - 1;
        while (bin_end(lo, W, size) <= x) ++lo;
        while (bin_start(hi, W, size) > x) --hi;
        col_lo[x] = static_cast<int32_t>(lo);
        col_hi[x] = static_cast<int32_t>(hi);
    }
    const int64_t Cp = (C + 15) / 16 * 16;
    const Kernels& k = active_kernels();
    const int64_t tasks = B * size;
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) if (threads > 1 && tasks > 1)
#endif
    {
        std::vector<float> rowvec(static_cast<size_t>(w * Cp)), scratch(static_cast<size_t>(Cp));
        std::vector<float> acc(static_cast<size_t>(size * Cp));
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t task = 0; task < tasks; ++task) {
            const int64_t b = task / size, I = task % size;
            const int64_t y_start = bin_start(I, H, size), y_end = bin_end(I, H, size);
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t y = y_start; y < y_end; ++y) {
                const float w1 = ty.frac[y], w0 = 1.0f - w1;
                const float* r0 = logits + ((b * h + ty.lo[y]) * w) * C;
                const float* r1 = logits + ((b * h + ty.hi[y]) * w) * C;
                for (int64_t xc = 0; xc < w; ++xc) {
                    float* v = rowvec.data() + xc * Cp;
                    for (int64_t c = 0; c < C; ++c) v[c] = w0 * r0[xc * C + c] + w1 * r1[xc * C + c];
                    for (int64_t c = C; c < Cp; ++c) v[c] = -1.0e30f;
                }
                k.softmax_pool_row(rowvec.data(), static_cast<int>(Cp), static_cast<int>(W), tx.lo.data(), tx.hi.data(),
                                   tx.frac.data(), col_lo.data(), col_hi.data(), acc.data(), scratch.data());
            }
            const float rows = static_cast<float>(y_end - y_start);
            for (int64_t J = 0; J < size; ++J) {
                const float inv = 1.0f / (rows * static_cast<float>(bin_end(J, W, size) - bin_start(J, W, size)));
                for (int64_t c = 0; c < C; ++c) out[((b * C + c) * size + I) * size + J] = acc[J * Cp + c] * inv;
            }
        }
    }
}

}  // namespace segsearch
