// AVX2 kernels. This file alone is compiled with -mavx2 -mfma (see CMakeLists.txt); it is only called
// after the CPU reported AVX2 support.
#include <immintrin.h>

#include "kernels.hpp"

namespace segsearch {
namespace avx2_level {
#include "kernels_generic.hpp"

// Bit mask of the codes in codes[0..64) that differ from the default.
static inline uint64_t non_default(const uint8_t* codes, __m256i vd) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + 32));
    const uint64_t lo = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, vd)));
    const uint64_t hi = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, vd)));
    return ~(lo | (hi << 32));
}

// dist[j] += delta[codes[j]] skipping default codes: 64 codes are compared at once and only the others
// are added, one by one (delta[dflt] == 0, so the result equals the dense loop's). Two 64-code masks are
// walked in one loop, which halves the hard-to-predict loop exits.
static void accumulate_sparse(const uint8_t* __restrict codes, int64_t n, uint8_t dflt,
                              const float* __restrict delta, float* __restrict dist) {
    const __m256i vd = _mm256_set1_epi8(static_cast<char>(dflt));
    int64_t j = 0;
    for (; j + 128 <= n; j += 128) {
        // Many columns are read at once (one per class): help the hardware prefetcher.
        _mm_prefetch(reinterpret_cast<const char*>(codes + j + 1024), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(codes + j + 1088), _MM_HINT_T0);
        uint64_t m0 = non_default(codes + j, vd), m1 = non_default(codes + j + 64, vd);
        const uint8_t* c1 = codes + j + 64;
        float* d1 = dist + j + 64;
        while (m0 | m1) {
            if (m0) {
                const int b = __builtin_ctzll(m0);
                m0 &= m0 - 1;
                dist[j + b] += delta[codes[j + b]];
            }
            if (m1) {
                const int b = __builtin_ctzll(m1);
                m1 &= m1 - 1;
                d1[b] += delta[c1[b]];
            }
        }
    }
    for (; j + 64 <= n; j += 64) {
        for (uint64_t m = non_default(codes + j, vd); m; m &= m - 1) {
            const int b = __builtin_ctzll(m);
            dist[j + b] += delta[codes[j + b]];
        }
    }
    for (; j < n; ++j) dist[j] += delta[codes[j]];
}

static int64_t below(const float* __restrict dist, int64_t n, float thr, int32_t* __restrict out) {
    const __m256 t = _mm256_set1_ps(thr);
    int64_t m = 0, j = 0;
    for (; j + 8 <= n; j += 8) {
        unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(dist + j), t, _CMP_LT_OQ)));
        while (mask) {
            out[m++] = static_cast<int32_t>(j + __builtin_ctz(mask));
            mask &= mask - 1;
        }
    }
    for (; j < n; ++j)
        if (dist[j] < thr) out[m++] = static_cast<int32_t>(j);
    return m;
}
#include "kernels_dot_avx2.hpp"
}  // namespace avx2_level

const Kernels& kernels_avx2() {
    using namespace avx2_level;
    static const Kernels k{generic_axpy, accumulate_sparse, generic_accumulate, below, dot_u8, generic_axpy_u8,
                           generic_axpy_u16};
    return k;
}
}  // namespace segsearch
