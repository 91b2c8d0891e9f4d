// The AVX2 block sums of the exact distance, shared by the AVX2 and AVX-512 files (both are compiled with AVX2
// enabled). Included inside each level's namespace, after <immintrin.h> and kernels_generic.hpp.
#pragma once

// Squares summed in 32-bit lanes for at most this many blocks (each adds < 2^19 to a lane), then in 64 bits.
static constexpr int64_t kSquareFlush = 2048;

// The same 64 lanes (eight registers of 8) and final order as generic_block_sums, so the result is identical.
static void block_sums(const float* __restrict row, const uint8_t* __restrict blocks, const uint32_t* __restrict index,
                       uint32_t first, int64_t count, float* dot, int64_t* sq) {
    __m256 a[8];
    for (auto& r : a) r = _mm256_setzero_ps();
    __m256i sq32 = _mm256_setzero_si256();
    int64_t s = 0;
    for (int64_t t = 0; t < count; ++t) {
        const float* q = row + static_cast<int64_t>(index[t] - first) * 64;
        const uint8_t* p = blocks + t * 64;
        for (int m = 0; m < 8; ++m) {
            const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8 * m));
            a[m] = _mm256_add_ps(
                a[m], _mm256_mul_ps(_mm256_loadu_ps(q + 8 * m), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b))));
        }
        for (int h = 0; h < 64; h += 16) {
            const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + h)));
            sq32 = _mm256_add_epi32(sq32, _mm256_madd_epi16(w, w));
        }
        if ((t + 1) % kSquareFlush == 0 || t + 1 == count) {
            alignas(32) int32_t part[8];
            _mm256_store_si256(reinterpret_cast<__m256i*>(part), sq32);
            for (int32_t v : part) s += v;
            sq32 = _mm256_setzero_si256();
        }
    }
    // r[l] = (acc[l] + acc[l + 16]) + (acc[l + 32] + acc[l + 48]): registers m and m + 2, m + 4, m + 6
    alignas(32) float r[16];
    _mm256_store_ps(r, _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[4], a[6])));
    _mm256_store_ps(r + 8, _mm256_add_ps(_mm256_add_ps(a[1], a[3]), _mm256_add_ps(a[5], a[7])));
    *dot = reduce16(r);
    *sq = s;
}
