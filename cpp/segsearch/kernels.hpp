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
    // The exact distance's two sums over one class's blocks of 64 values (scan_blocks.cpp): *dot = the sum of
    // row[(index[t] - first) * 64 + j] * blocks[t * 64 + j] over the count blocks t and j < 64, in 64 float lanes
    // (lane j adds position j of each block, block after block: independent chains) reduced in the fixed order of
    // reduce64: every level makes the same additions in the same order, so the same float. *sq = the sum of
    // blocks[t * 64 + j]^2 (an integer, exact in any order).
    void (*block_sums)(const float* row, const uint8_t* blocks, const uint32_t* index, uint32_t first, int64_t count,
                       float* dot, int64_t* sq);
    // y[0..n) += a * x[0..n) for the compact codebook (uint8 values) and its row-run sums (uint16)
    void (*axpy_u8)(float a, const uint8_t* x, float* y, int n);
    // four axpy_u8 in a row (rows x[0..3], weights a[0..3]) with y kept in registers: the same additions in the
    // same order, so the same result as four calls
    void (*axpy4_u8)(const float* a, const uint8_t* const* x, float* y, int n);
    void (*axpy_u16)(float a, const uint16_t* x, float* y, int n);
    // The quantized scan (scan_pq.cpp). acc[j] = sum over u < nc of tables[u * 256 + cols[u][j]], j < n, in
    // uint16 lanes (the caller keeps every sum <= 65535). Each table's entries v >= K all equal its entry 255,
    // which lets the kernels look up only the first K (16-entry byte shuffles cover ceil(K / 16) rows).
    void (*accumulate_u8)(const uint8_t* const* cols, int nc, int64_t n, const uint8_t* tables, int K, uint16_t* acc);
    // Writes the j < n with acc[j] <= thr to out (ascending); returns how many.
    int64_t (*at_most_u16)(const uint16_t* acc, int64_t n, uint16_t thr, int32_t* out);
    // Cost per code of accumulate_u8 relative to accumulate_dense, for K <= 16 and K > 16 (measured on the
    // development machine); 0: no SIMD kernel, the quantized scan is never chosen automatically.
    float quantized_cost_small, quantized_cost_large;
    // One upsampled row of logits to area-pooled softmax sums (softmax_pool.cpp; see generic_softmax_pool_row).
    void (*softmax_pool_row)(const float* rowvec, int Cp, int W, const int32_t* x0, const int32_t* x1, const float* lx,
                             const int32_t* bin_lo, const int32_t* bin_hi, float* acc, float* scratch);
    // out[i] = the float16 whose bits are in[i], i < n, exactly (see generic_f16_to_f32)
    void (*f16_to_f32)(const uint16_t* in, float* out, int64_t n);
};

const Kernels& kernels_scalar();
#if defined(SEGSEARCH_HAVE_X86)
const Kernels& kernels_avx2();
const Kernels& kernels_avx512();
// The quantized scan's AVX2 kernel (kernels_avx2.cpp), also the AVX-512 level's on CPUs without VBMI.
void accumulate_u8_avx2(const uint8_t* const* cols, int nc, int64_t n, const uint8_t* tables, int K, uint16_t* acc);
// The AVX-512 VBMI byte-table kernel (kernels_vbmi.cpp, its own flags); call only if cpu_has_avx512vbmi().
void accumulate_u8_vbmi(const uint8_t* const* cols, int nc, int64_t n, const uint8_t* tables, int K, uint16_t* acc);
bool cpu_has_avx512vbmi();
#endif

const Kernels& active_kernels();

}  // namespace segsearch
