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
static void accumulate_sparse(const uint8_t* __restrict codes, int64_t n, uint8_t dflt, const float* __restrict delta,
                              float* __restrict dist) {
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
        unsigned mask =
            static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(dist + j), t, _CMP_LT_OQ)));
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

// t[code] for 32 codes with 16-entry shuffles: row h of the table (entries 16h..16h+15) is looked up with the
// code's low nibble, then a tree of byte blends picks the row by the high nibble's bits (vpblendvb reads
// bit 7 of each byte: code << 3 puts bit 4 there, and so on). Rows at or past `rows` hold only `fill`.
static inline __m256i lookup_rows(__m256i code, const uint8_t* t, int rows, __m256i fill) {
    const __m256i lo = _mm256_and_si256(code, _mm256_set1_epi8(0x0F));
    __m256i r[16];
    for (int h = 0; h < 16; ++h)
        r[h] = h < rows
                   ? _mm256_shuffle_epi8(
                         _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16 * h))), lo)
                   : fill;
    for (int bit = 4, width = 16; bit < 8; ++bit, width /= 2) {
        const __m256i sel = bit == 7 ? code : _mm256_slli_epi16(code, 7 - bit);
        for (int h = 0; h < width / 2; ++h) r[h] = _mm256_blendv_epi8(r[2 * h], r[2 * h + 1], sel);
    }
    return r[0];
}

}  // namespace avx2_level

// The quantized scan's byte-table sums, 32 codes per step (K <= 16: one shuffle; else ceil(K / 16) rows and
// the blend tree), widened to uint16 and added to acc. Not static: the AVX-512 level uses it on CPUs
// without VBMI.
void accumulate_u8_avx2(const uint8_t* const* cols, int nc, int64_t n, const uint8_t* __restrict tables, int K,
                        uint16_t* __restrict acc) {
    const int rows = (K + 15) / 16;
    for (int64_t j = 0; j < n; ++j) acc[j] = 0;
    for (int u = 0; u < nc; ++u) {
        const uint8_t* __restrict c = cols[u];
        const uint8_t* t = tables + u * 256;
        const __m256i fill = _mm256_set1_epi8(static_cast<char>(t[255]));
        const __m256i row0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t)));
        const __m256i fifteen = _mm256_set1_epi8(15);
        int64_t j = 0;
        for (; j + 32 <= n; j += 32) {
            const __m256i code = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + j));
            __m256i v;
            if (rows == 1) {  // K <= 16: one shuffle (0 where bit 7 is set), the fill where code > 15
                const __m256i small = _mm256_cmpeq_epi8(_mm256_min_epu8(code, fifteen), code);
                v = _mm256_blendv_epi8(fill, _mm256_shuffle_epi8(row0, code), small);
            } else {
                v = avx2_level::lookup_rows(code, t, rows, fill);
            }
            __m256i* a = reinterpret_cast<__m256i*>(acc + j);
            _mm256_storeu_si256(
                a, _mm256_add_epi16(_mm256_loadu_si256(a), _mm256_cvtepu8_epi16(_mm256_castsi256_si128(v))));
            _mm256_storeu_si256(a + 1, _mm256_add_epi16(_mm256_loadu_si256(a + 1),
                                                        _mm256_cvtepu8_epi16(_mm256_extracti128_si256(v, 1))));
        }
        for (; j < n; ++j) acc[j] = static_cast<uint16_t>(acc[j] + t[c[j]]);
    }
}

namespace avx2_level {
static int64_t at_most_u16(const uint16_t* __restrict acc, int64_t n, uint16_t thr, int32_t* __restrict out) {
    const __m256i t = _mm256_set1_epi16(static_cast<short>(thr));
    int64_t m = 0, j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j));
        // two mask bits per 16-bit lane: keep the even ones
        unsigned mask =
            static_cast<unsigned>(_mm256_movemask_epi8(_mm256_cmpeq_epi16(_mm256_min_epu16(a, t), a))) & 0x55555555u;
        while (mask) {
            out[m++] = static_cast<int32_t>(j + (__builtin_ctz(mask) >> 1));
            mask &= mask - 1;
        }
    }
    for (; j < n; ++j)
        if (acc[j] <= thr) out[m++] = static_cast<int32_t>(j);
    return m;
}
}  // namespace avx2_level

const Kernels& kernels_avx2() {
    using namespace avx2_level;
    static const Kernels k{generic_axpy,
                           accumulate_sparse,
                           generic_accumulate,
                           below,
                           block_sums,
                           generic_axpy_u8,
                           generic_axpy4_u8,
                           generic_axpy_u16,
                           accumulate_u8_avx2,
                           at_most_u16,
                           /*quantized_cost_small=*/0.15f,
                           /*quantized_cost_large=*/0.5f,
                           generic_softmax_pool_row,
                           generic_f16_to_f32};
    return k;
}
}  // namespace segsearch
