// The AVX2 dot kernel of the exact scan, shared by the AVX2 and AVX-512 files (both are compiled with
// AVX2 enabled). Included inside each level's namespace, after <immintrin.h>.
#pragma once

// sum_j q[j] * p[j]: the same 8 lanes and final order as generic_dot_u8, so the result is identical.
static float dot_u8(const float* __restrict q, const uint8_t* __restrict p, int n) {
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 pv =
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + i))));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(q + i), pv));
    }
    alignas(32) float a[8];
    _mm256_store_ps(a, acc);
    float s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; i < n; ++i) s += q[i] * static_cast<float>(p[i]);
    return s;
}
