// AVX-512 kernels (F + BW + VL). This file alone is compiled with those flags (see CMakeLists.txt); it
// is only called after the CPU reported AVX-512 F and BW support.
#include <immintrin.h>

#include "kernels.hpp"

namespace segsearch {
namespace avx512_level {
#include "kernels_generic.hpp"

// Same contract as the AVX2 versions: one 64-byte compare per step (and 16-wide float compares below).
static void accumulate_sparse(const uint8_t* __restrict codes, int64_t n, uint8_t dflt, const float* __restrict delta,
                              float* __restrict dist) {
    const __m512i vd = _mm512_set1_epi8(static_cast<char>(dflt));
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        _mm_prefetch(reinterpret_cast<const char*>(codes + j + 1024), _MM_HINT_T0);  // see the AVX2 version
        uint64_t m = _mm512_cmpneq_epi8_mask(_mm512_loadu_si512(reinterpret_cast<const void*>(codes + j)), vd);
        while (m) {
            const int bit = __builtin_ctzll(m);
            m &= m - 1;
            dist[j + bit] += delta[codes[j + bit]];
        }
    }
    for (; j < n; ++j) dist[j] += delta[codes[j]];
}

static int64_t below(const float* __restrict dist, int64_t n, float thr, int32_t* __restrict out) {
    const __m512 t = _mm512_set1_ps(thr);
    int64_t m = 0, j = 0;
    for (; j + 16 <= n; j += 16) {
        unsigned mask = _mm512_cmp_ps_mask(_mm512_loadu_ps(dist + j), t, _CMP_LT_OQ);
        while (mask) {
            out[m++] = static_cast<int32_t>(j + __builtin_ctz(mask));
            mask &= mask - 1;
        }
    }
    for (; j < n; ++j)
        if (dist[j] < thr) out[m++] = static_cast<int32_t>(j);
    return m;
}

static int64_t at_most_u16(const uint16_t* __restrict acc, int64_t n, uint16_t thr, int32_t* __restrict out) {
    const __m512i t = _mm512_set1_epi16(static_cast<short>(thr));
    int64_t m = 0, j = 0;
    for (; j + 32 <= n; j += 32) {
        uint32_t mask = _mm512_cmple_epu16_mask(_mm512_loadu_si512(acc + j), t);
        while (mask) {
            out[m++] = static_cast<int32_t>(j + __builtin_ctz(mask));
            mask &= mask - 1;
        }
    }
    for (; j < n; ++j)
        if (acc[j] <= thr) out[m++] = static_cast<int32_t>(j);
    return m;
}
#include "kernels_dot_avx2.hpp"

// generic_block_sums's 64 lanes in four registers: the same additions in the same order, so the same result.
static void block_sums_512(const float* __restrict row, const uint8_t* __restrict blocks,
                           const uint32_t* __restrict index, uint32_t first, int64_t count, float* dot, int64_t* sq) {
    __m512 a[4];
    for (auto& r : a) r = _mm512_setzero_ps();
    __m512i sq32 = _mm512_setzero_si512();
    int64_t s = 0;
    for (int64_t t = 0; t < count; ++t) {
        const float* q = row + static_cast<int64_t>(index[t] - first) * 64;
        const uint8_t* p = blocks + t * 64;
        for (int m = 0; m < 4; ++m) {
            const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * m));
            a[m] = _mm512_add_ps(
                a[m], _mm512_mul_ps(_mm512_loadu_ps(q + 16 * m), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b))));
        }
        const __m512i w0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        const __m512i w1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
        sq32 = _mm512_add_epi32(sq32, _mm512_add_epi32(_mm512_madd_epi16(w0, w0), _mm512_madd_epi16(w1, w1)));
        if ((t + 1) % kSquareFlush == 0 || t + 1 == count) {
            s += _mm512_reduce_add_epi32(sq32);
            sq32 = _mm512_setzero_si512();
        }
    }
    alignas(64) float r[16];
    _mm512_store_ps(r, _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
    *dot = reduce16(r);
    *sq = s;
}
}  // namespace avx512_level

// The quantized scan uses the VBMI kernel (its own file and flags) where the CPU has VBMI, else the AVX2 one.
const Kernels& kernels_avx512() {
    using namespace avx512_level;
    static const bool vbmi = cpu_has_avx512vbmi();
    static const Kernels k{generic_axpy,
                           accumulate_sparse,
                           generic_accumulate,
                           below,
                           block_sums_512,
                           generic_axpy_u8,
                           generic_axpy4_u8,
                           generic_axpy_u16,
                           vbmi ? accumulate_u8_vbmi : accumulate_u8_avx2,
                           at_most_u16,
                           /*quantized_cost_small=*/0.15f,
                           /*quantized_cost_large=*/vbmi ? 0.15f : 0.5f,
                           generic_softmax_pool_row,
                           generic_f16_to_f32};
    return k;
}
}  // namespace segsearch
