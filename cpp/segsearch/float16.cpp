// float16 to float32 conversion (see core.hpp): numpy's cast is slow on the subnormal values that fill softmax maps
// (most class probabilities are below float16's smallest normal, 6.1e-5), and the training sample is float16.
#include <algorithm>

#include "core.hpp"
#include "kernels.hpp"

namespace segsearch {

void float16_to_float32(const uint16_t* in, float* out, int64_t n, int threads) {
    if (n <= 0) return;
    const auto convert = active_kernels().f16_to_f32;
    constexpr int64_t kChunk = int64_t{1} << 16;  // values a thread converts at a time
    const int64_t chunks = (n + kChunk - 1) / kChunk;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && chunks > 1)
#endif
    for (int64_t c = 0; c < chunks; ++c) {
        const int64_t lo = c * kChunk;
        convert(in + lo, out + lo, std::min(kChunk, n - lo));
    }
    (void)threads;
}

}  // namespace segsearch
