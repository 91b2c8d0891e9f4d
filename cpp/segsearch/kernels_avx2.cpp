// AVX2 kernels. This file alone is compiled with -mavx2 -mfma (see CMakeLists.txt); it is only called
// after the CPU reported AVX2 support.
#include <immintrin.h>

#include "kernels.hpp"

namespace segsearch {
namespace avx2_level {
#include "kernels_generic.hpp"

// dist[j] += delta[codes[j]]: 32 codes at a time; blocks where every code is the default are skipped
// (delta[dflt] == 0), sparse blocks are added one by one, dense blocks by 8-wide gathers.
static void accumulate(const uint8_t* __restrict codes, int64_t n, uint8_t dflt, const float* __restrict delta,
                       float* __restrict dist) {
    const __m256i vd = _mm256_set1_epi8(static_cast<char>(dflt));
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + j));
        uint32_t m = ~static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, vd)));
        if (m == 0) continue;
        if (__builtin_popcount(m) <= 8) {
            while (m) {
                const int b = __builtin_ctz(m);
                m &= m - 1;
                dist[j + b] += delta[codes[j + b]];
            }
        } else {
            for (int h = 0; h < 32; h += 8) {
                const __m256i idx =
                    _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + j + h)));
                const __m256 g = _mm256_i32gather_ps(delta, idx, 4);
                _mm256_storeu_ps(dist + j + h, _mm256_add_ps(_mm256_loadu_ps(dist + j + h), g));
            }
        }
    }
    for (; j < n; ++j) dist[j] += delta[codes[j]];
}
}  // namespace avx2_level

const Kernels& kernels_avx2() {
    static const Kernels k{avx2_level::generic_axpy, avx2_level::accumulate, avx2_level::generic_dot_u8};
    return k;
}
}  // namespace segsearch
