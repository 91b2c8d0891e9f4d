// AVX-512 kernels (F + BW + VL). This file alone is compiled with those flags (see CMakeLists.txt); it
// is only called after the CPU reported AVX-512 F and BW support.
#include <immintrin.h>

#include "kernels.hpp"

namespace segsearch {
namespace avx512_level {
#include "kernels_generic.hpp"

// Same contract as the AVX2 version, 64 codes per step and 16-wide gathers.
static void accumulate(const uint8_t* __restrict codes, int64_t n, uint8_t dflt, const float* __restrict delta,
                       float* __restrict dist) {
    const __m512i vd = _mm512_set1_epi8(static_cast<char>(dflt));
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
        const __m512i v = _mm512_loadu_si512(reinterpret_cast<const void*>(codes + j));
        uint64_t m = _mm512_cmpneq_epi8_mask(v, vd);
        if (m == 0) continue;
        if (__builtin_popcountll(m) <= 12) {
            while (m) {
                const int b = __builtin_ctzll(m);
                m &= m - 1;
                dist[j + b] += delta[codes[j + b]];
            }
        } else {
            for (int h = 0; h < 64; h += 16) {
                const __m512i idx =
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + j + h)));
                const __m512 g = _mm512_i32gather_ps(idx, delta, 4);
                _mm512_storeu_ps(dist + j + h, _mm512_add_ps(_mm512_loadu_ps(dist + j + h), g));
            }
        }
    }
    for (; j < n; ++j) dist[j] += delta[codes[j]];
}
}  // namespace avx512_level

const Kernels& kernels_avx512() {
    static const Kernels k{avx512_level::generic_axpy, avx512_level::accumulate, avx512_level::generic_dot_u8};
    return k;
}
}  // namespace segsearch
