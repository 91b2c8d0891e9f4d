// The quantized scan's AVX-512 VBMI kernel. This file alone is compiled with -mavx512vbmi and the AVX-512
// F/BW/VL flags (see CMakeLists.txt); it is only called after the CPU reported avx512vbmi.
// GCC 12 warns that its own _mm512_castsi512_si256 / _mm512_extracti64x4_epi64 read an uninitialized
// variable (GCC bug 105593, a false positive in the intrinsic headers): silence it for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "kernels.hpp"

namespace segsearch {

// acc[j] = sum_u tables[u][cols[u][j]]: a 256-entry byte table is four registers; vpermi2b looks up 64 codes
// in a 128-entry half (it reads the low 7 bits), and the code's top bit picks the half. The bytes are widened
// to uint16 and added to acc. The entries >= K equal entry 255 already, so K is not needed here.
void accumulate_u8_vbmi(const uint8_t* const* cols, int nc, int64_t n, const uint8_t* __restrict tables, int /*K*/,
                        uint16_t* __restrict acc) {
    for (int64_t j = 0; j < n; ++j) acc[j] = 0;
    for (int u = 0; u < nc; ++u) {
        const uint8_t* __restrict c = cols[u];
        const uint8_t* t = tables + u * 256;
        const __m512i t0 = _mm512_loadu_si512(t), t1 = _mm512_loadu_si512(t + 64);
        const __m512i t2 = _mm512_loadu_si512(t + 128), t3 = _mm512_loadu_si512(t + 192);
        int64_t j = 0;
        for (; j + 64 <= n; j += 64) {
            const __m512i code = _mm512_loadu_si512(c + j);
            const __m512i lo = _mm512_permutex2var_epi8(t0, code, t1);
            const __m512i hi = _mm512_permutex2var_epi8(t2, code, t3);
            const __m512i v = _mm512_mask_blend_epi8(_mm512_movepi8_mask(code), lo, hi);
            __m512i* a = reinterpret_cast<__m512i*>(acc + j);
            _mm512_storeu_si512(
                a, _mm512_add_epi16(_mm512_loadu_si512(a), _mm512_cvtepu8_epi16(_mm512_castsi512_si256(v))));
            _mm512_storeu_si512(a + 1, _mm512_add_epi16(_mm512_loadu_si512(a + 1),
                                                        _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(v, 1))));
        }
        for (; j < n; ++j) acc[j] = static_cast<uint16_t>(acc[j] + t[c[j]]);
    }
}

}  // namespace segsearch
