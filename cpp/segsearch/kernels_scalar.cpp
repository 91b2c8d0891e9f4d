// Scalar kernels: always compiled, no special flags.
#include "kernels.hpp"

namespace segsearch {
namespace scalar_level {
#include "kernels_generic.hpp"
}  // namespace scalar_level

const Kernels& kernels_scalar() {
    using namespace scalar_level;
    static const Kernels k{generic_axpy,
                           generic_accumulate,
                           generic_accumulate,
                           generic_below,
                           generic_block_sums,
                           generic_axpy_u8,
                           generic_axpy4_u8,
                           generic_axpy_u16,
                           generic_accumulate_u8,
                           generic_at_most_u16,
                           0.0f,
                           0.0f,
                           generic_softmax_pool_row,
                           generic_f16_to_f32};
    return k;
}
}  // namespace segsearch
