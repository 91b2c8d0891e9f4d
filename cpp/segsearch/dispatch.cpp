// Run-time choice of the SIMD level: the best the CPU supports, or SEGSEARCH_SIMD=scalar|avx2|avx512.
#include <atomic>
#include <cstdlib>

#include "core.hpp"
#include "kernels.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace segsearch {

static bool cpu_supports(SimdLevel level) {
    switch (level) {
        case SimdLevel::Scalar:
            return true;
#if defined(SEGSEARCH_HAVE_X86)
        case SimdLevel::AVX2:
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case SimdLevel::AVX512:
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl");
#endif
        default:
            return false;
    }
}

#if defined(SEGSEARCH_HAVE_X86)
bool cpu_has_avx512vbmi() { return cpu_supports(SimdLevel::AVX512) && __builtin_cpu_supports("avx512vbmi"); }
#endif

std::string simd_level_name(SimdLevel level) {
    switch (level) {
        case SimdLevel::Scalar:
            return "scalar";
        case SimdLevel::AVX2:
            return "avx2";
        case SimdLevel::AVX512:
            return "avx512";
    }
    return "unknown";
}

SimdLevel parse_simd_level(const std::string& name) {
    if (name == "scalar") return SimdLevel::Scalar;
    if (name == "avx2") return SimdLevel::AVX2;
    if (name == "avx512") return SimdLevel::AVX512;
    throw InvalidArgument("unknown SIMD level '" + name + "'; use one of: scalar, avx2, avx512");
}

std::vector<SimdLevel> supported_simd_levels() {
    std::vector<SimdLevel> out;
    for (SimdLevel l : {SimdLevel::Scalar, SimdLevel::AVX2, SimdLevel::AVX512})
        if (cpu_supports(l)) out.push_back(l);
    return out;
}

static SimdLevel best_level() { return supported_simd_levels().back(); }

static std::atomic<int>& level_slot() {
    static std::atomic<int> slot{static_cast<int>(best_level())};
    return slot;
}

SimdLevel simd_level() { return static_cast<SimdLevel>(level_slot().load()); }

void set_simd_level(SimdLevel level) {
    if (!cpu_supports(level)) {
        std::string names;
        for (SimdLevel l : supported_simd_levels()) names += (names.empty() ? "" : ", ") + simd_level_name(l);
        throw InvalidArgument("SIMD level '" + simd_level_name(level) +
                              "' is not available on this CPU or build; available: " + names);
    }
    level_slot().store(static_cast<int>(level));
}

const Kernels& active_kernels() {
    switch (simd_level()) {
#if defined(SEGSEARCH_HAVE_X86)
        case SimdLevel::AVX2:
            return kernels_avx2();
        case SimdLevel::AVX512:
            return kernels_avx512();
#endif
        default:
            return kernels_scalar();
    }
}

int default_threads() {
#if defined(_OPENMP)
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace segsearch
