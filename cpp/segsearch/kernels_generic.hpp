// Plain C++ kernel bodies. Included by each kernels_<level>.cpp inside its own namespace, so the
// compiler vectorizes them with that file's flags.
#pragma once
#include <cstdint>

[[maybe_unused]] static void generic_axpy(float a, const float* __restrict x, float* __restrict y, int n) {
    for (int i = 0; i < n; ++i) y[i] += a * x[i];
}

// The same for integer rows: each value converts to float exactly, so every level rounds alike.
[[maybe_unused]] static void generic_axpy_u8(float a, const uint8_t* __restrict x, float* __restrict y, int n) {
    for (int i = 0; i < n; ++i) y[i] += a * static_cast<float>(x[i]);
}

[[maybe_unused]] static void generic_axpy4_u8(const float* a, const uint8_t* const* x, float* __restrict y, int n) {
    const float a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    const uint8_t* __restrict x0 = x[0];
    const uint8_t* __restrict x1 = x[1];
    const uint8_t* __restrict x2 = x[2];
    const uint8_t* __restrict x3 = x[3];
    for (int i = 0; i < n; ++i) {
        float v = y[i];
        v += a0 * static_cast<float>(x0[i]);
        v += a1 * static_cast<float>(x1[i]);
        v += a2 * static_cast<float>(x2[i]);
        v += a3 * static_cast<float>(x3[i]);
        y[i] = v;
    }
}

[[maybe_unused]] static void generic_axpy_u16(float a, const uint16_t* __restrict x, float* __restrict y, int n) {
    for (int i = 0; i < n; ++i) y[i] += a * static_cast<float>(x[i]);
}

// Scalar lookups: vectorizing this loop means gathers, which are slower than scalar loads on many CPUs.
[[maybe_unused]] __attribute__((optimize("no-tree-vectorize"))) static void generic_accumulate(
    const uint8_t* __restrict codes, int64_t n, uint8_t /*dflt*/, const float* __restrict delta,
    float* __restrict dist) {
    for (int64_t j = 0; j < n; ++j) dist[j] += delta[codes[j]];
}

[[maybe_unused]] static int64_t generic_below(const float* __restrict dist, int64_t n, float thr,
                                              int32_t* __restrict out) {
    int64_t m = 0;
    for (int64_t j = 0; j < n; ++j) {
        out[m] = static_cast<int32_t>(j);
        m += dist[j] < thr;
    }
    return m;
}

// The reduction of the 64 lanes of block_sums: r[l] = (a[l] + a[l + 16]) + (a[l + 32] + a[l + 48]) for l < 16,
// t[l] = r[l] + r[l + 8] for l < 8, then a fixed tree over t.
[[maybe_unused]] static inline float reduce16(const float* r) {
    float t[8];
    for (int l = 0; l < 8; ++l) t[l] = r[l] + r[l + 8];
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

[[maybe_unused]] static inline float reduce64(const float* a) {
    float r[16];
    for (int l = 0; l < 16; ++l) r[l] = (a[l] + a[l + 16]) + (a[l + 32] + a[l + 48]);
    return reduce16(r);
}

[[maybe_unused]] static void generic_block_sums(const float* __restrict row, const uint8_t* __restrict blocks,
                                                const uint32_t* __restrict index, uint32_t first, int64_t count,
                                                float* dot, int64_t* sq) {
    float acc[64] = {};
    int64_t s = 0;
    for (int64_t t = 0; t < count; ++t) {
        const float* __restrict q = row + static_cast<int64_t>(index[t] - first) * 64;
        const uint8_t* __restrict p = blocks + t * 64;
        for (int j = 0; j < 64; ++j) acc[j] += q[j] * static_cast<float>(p[j]);
        int32_t b = 0;
        for (int j = 0; j < 64; ++j) b += static_cast<int32_t>(p[j]) * p[j];
        s += b;
    }
    *dot = reduce64(acc);
    *sq = s;
}

// Byte-table sums of the quantized scan, one class at a time (scalar lookups, as generic_accumulate).
[[maybe_unused]] __attribute__((optimize("no-tree-vectorize"))) static void generic_accumulate_u8(
    const uint8_t* const* cols, int nc, int64_t n, const uint8_t* __restrict tables, int /*K*/,
    uint16_t* __restrict acc) {
    for (int64_t j = 0; j < n; ++j) acc[j] = 0;
    for (int u = 0; u < nc; ++u) {
        const uint8_t* __restrict c = cols[u];
        const uint8_t* __restrict t = tables + u * 256;
        for (int64_t j = 0; j < n; ++j) acc[j] = static_cast<uint16_t>(acc[j] + t[c[j]]);
    }
}

[[maybe_unused]] static int64_t generic_at_most_u16(const uint16_t* __restrict acc, int64_t n, uint16_t thr,
                                                    int32_t* __restrict out) {
    int64_t m = 0;
    for (int64_t j = 0; j < n; ++j) {
        out[m] = static_cast<int32_t>(j);
        m += acc[j] <= thr;
    }
    return m;
}

// exp(x) for x <= 0 (Cephes' expf polynomial: x = n ln 2 + r with n the nearest integer to x / ln 2, ln 2 in two
// parts, a degree-6 polynomial in r, 2^n put into the exponent bits), within 2 ulp of the exact value; below -87.3
// it gives exp(-87.3) ~ 1.2e-38 (a normal float), never 0 or a denormal. Only float adds and multiplies and integer
// adds and shifts (n is rounded by adding 1.5 * 2^23, no float-to-int conversion): the compiler vectorizes it with
// each level's flags, and every level computes the same bits (no contraction into FMA).
[[maybe_unused]] static inline float generic_exp_nonpositive(float x) {
    constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low bits
    x = x < -87.3f ? -87.3f : x;
    const float t = x * 1.44269504088896341f + kRound;
    const float n = t - kRound;  // in [-126, 0]
    x = x - n * 0.693359375f;
    x = x - n * -2.12194440e-4f;
    const float z = x * x;
    float y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    int32_t bits;
    __builtin_memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000 + 127) * (1 << 23);  // (n + 127) << 23: 2^n as a float's bits
    float p;
    __builtin_memcpy(&p, &bits, sizeof p);
    return y * p;
}

// One upsampled row of the network's logits to area-pooled softmax sums (softmax_pool.cpp). rowvec: the row at the
// w input columns, w x Cp floats (Cp a multiple of 16; lanes past the real classes hold -1e30, so their exp is
// ~0). For each output column x < W: u = (1 - lx[x]) * rowvec[x0[x]] + lx[x] * rowvec[x1[x]] (bilinear), p =
// softmax(u) over the lanes, and acc[k * Cp + lane] += p for each column bin k in [bin_lo[x], bin_hi[x]]. scratch:
// Cp floats. Maximum and sum are taken in 16 lanes and reduced in a fixed order: every level gives the same floats.
[[maybe_unused]] static void generic_softmax_pool_row(const float* __restrict rowvec, int Cp, int W, const int32_t* x0,
                                                      const int32_t* x1, const float* lx, const int32_t* bin_lo,
                                                      const int32_t* bin_hi, float* __restrict acc,
                                                      float* __restrict scratch) {
    constexpr int L = 16;
    for (int x = 0; x < W; ++x) {
        const float* __restrict a = rowvec + static_cast<int64_t>(x0[x]) * Cp;
        const float* __restrict b = rowvec + static_cast<int64_t>(x1[x]) * Cp;
        const float w1 = lx[x], w0 = 1.0f - w1;
        float mx[L];
        for (int j = 0; j < L; ++j) mx[j] = -3.0e38f;
        for (int c = 0; c < Cp; c += L)
            for (int j = 0; j < L; ++j) {
                const float u = w0 * a[c + j] + w1 * b[c + j];
                scratch[c + j] = u;
                mx[j] = u > mx[j] ? u : mx[j];
            }
        float m = mx[0];
        for (int j = 1; j < L; ++j) m = mx[j] > m ? mx[j] : m;
        float s[L] = {};
        for (int c = 0; c < Cp; c += L)
            for (int j = 0; j < L; ++j) {
                const float e = generic_exp_nonpositive(scratch[c + j] - m);
                scratch[c + j] = e;
                s[j] += e;
            }
        const float inv = 1.0f / reduce16(s);
        for (int k = bin_lo[x]; k <= bin_hi[x]; ++k) {
            float* __restrict out = acc + static_cast<int64_t>(k) * Cp;
            for (int c = 0; c < Cp; ++c) out[c] += scratch[c] * inv;
        }
    }
}

// float16 values (their bits) to float32, exactly: every float16 is a float32. Normal numbers move their exponent
// (by 112, by 224 for infinities and NaNs, whose payload and quiet bit are kept); subnormals are an integer times
// 2^-24, a normal float32, so no float32 subnormal is made or read and a flush-to-zero mode cannot change the
// result. Masks instead of branches: the compiler vectorizes the loop at each level.
[[maybe_unused]] static void generic_f16_to_f32(const uint16_t* __restrict in, float* __restrict out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t h = in[i];
        const uint32_t em = h & 0x7fffu;
        const float sub = static_cast<float>(static_cast<int32_t>(em)) * 5.9604644775390625e-08f;  // em * 2^-24
        uint32_t sub_bits;
        __builtin_memcpy(&sub_bits, &sub, sizeof sub_bits);
        const uint32_t is_sub = 0u - static_cast<uint32_t>(em < 0x400u);
        const uint32_t is_special = 0u - static_cast<uint32_t>(em >= 0x7c00u);
        const uint32_t moved = (em << 13) + 0x38000000u + (is_special & 0x38000000u);
        const uint32_t bits = (sub_bits & is_sub) | (moved & ~is_sub) | ((h & 0x8000u) << 16);
        __builtin_memcpy(out + i, &bits, sizeof bits);
    }
}
