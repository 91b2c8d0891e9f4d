// The table of SIMD kernels; one instance per level, each compiled in its own file with its own flags.
#pragma once
#include <cstdint>

namespace segsearch {

struct Kernels {
    // y[0..n) += a * x[0..n)
    void (*axpy)(float a, const float* x, float* y, int n);
    // dist[j] += delta[codes[j]] for j < n, where delta[dflt] == 0. Two versions with identical results:
    // `accumulate_sparse` skips codes equal to dflt (fast when most are), `accumulate_dense` does not.
    void (*accumulate_sparse)(const uint8_t* codes, int64_t n, uint8_t dflt, const float* delta, float* dist);
    void (*accumulate_dense)(const uint8_t* codes, int64_t n, uint8_t dflt, const float* delta, float* dist);
    // Writes the j < n with dist[j] < thr to out (ascending); returns how many.
    int64_t (*below)(const float* dist, int64_t n, float thr, int32_t* out);
    // sum_j q[j] * p[j] (p is uint8) over n values
    float (*dot_u8)(const float* q, const uint8_t* p, int n);
    // y[0..n) += a * x[0..n) for the compact codebook (uint8 values) and its row-run sums (uint16)
    void (*axpy_u8)(float a, const uint8_t* x, float* y, int n);
    void (*axpy_u16)(float a, const uint16_t* x, float* y, int n);
};

const Kernels& kernels_scalar();
#if defined(SEGSEARCH_HAVE_X86)
const Kernels& kernels_avx2();
const Kernels& kernels_avx512();
#endif

const Kernels& active_kernels();

}  // namespace segsearch
