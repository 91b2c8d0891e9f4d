// Scalar kernels: always compiled, no special flags.
#include "kernels.hpp"

namespace segsearch {
namespace scalar_level {
#include "kernels_generic.hpp"
}  // namespace scalar_level

const Kernels& kernels_scalar() {
    static const Kernels k{scalar_level::generic_axpy, scalar_level::generic_accumulate,
                           scalar_level::generic_dot_u8};
    return k;
}
}  // namespace segsearch
