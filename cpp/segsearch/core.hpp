// segsearch C++ core: LUT builders, PQ scan, exact distances over block maps. No Python headers here.
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace segsearch {

// Thrown for arguments that are wrong (mapped to ValueError by the bindings).
struct InvalidArgument : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};
// Thrown for stored data found damaged while it is read (an index loaded without verifying it): mapped to
// segsearch.IndexFormatError by the bindings.
struct DamagedData : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// Thrown when the Python side asked the work to stop (Ctrl-C).
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("interrupted") {}
};

// Called now and then from one thread during long loops; returns true to stop.
using InterruptCheck = std::function<bool()>;

// Product-quantization codebook, position-major: data[c][pixel][k] (C x D x K floats).
// Optionally with block sums: block_sums[c][row][b][k] = sum of data[c][row * n + x][k] over the pixels x
// of block b (x in [b * block_w, min(n, (b + 1) * block_w))), n = sqrt(D), nb = ceil(n / block_w) blocks per
// row. Sketch strokes cover whole blocks mostly, and such a block then costs one row read instead of block_w.
// The compact codebook (index format 3 on) holds each centroid value as a byte v, meaning v / 255 (data_u8), and
// its block sums as uint16 sums of those bytes (block_sums_u16); older indexes hold float32 (data, block_sums).
// Exactly one of data / data_u8 is set.
struct Codebook {
    const float* data = nullptr;
    const float* norms = nullptr;  // ||a_{c,k}||^2, C x K (of the values the centroids mean: v / 255 for bytes)
    int C = 0, D = 0, K = 0;
    const float* block_sums = nullptr;  // C x (n * nb) x K, or null
    int n = 0, block_w = 0;
    const uint8_t* data_u8 = nullptr;
    const uint16_t* block_sums_u16 = nullptr;
};

// One query in its raw form. labels: D int32, -1 = unspecified, 0..C-1 = class.
enum class QueryKind : int { Image = 0, Sketch = 1, ImageSketch = 2 };
struct QuerySpec {
    QueryKind kind = QueryKind::Image;
    const float* probs = nullptr;     // C x D, for Image / ImageSketch
    const int32_t* labels = nullptr;  // D, for Sketch / ImageSketch
    // Optional per-class weights w (C, all > 0): the photo's maps are reweighted pixel by pixel,
    // p'_c(j) = w_c p_c(j) / sum_c' w_c' p_c'(j), before drawn pixels override them (the index's class-prior
    // correction; the database maps were reweighted the same way when they were encoded).
    const float* class_weights = nullptr;
};

// The query vectors q_c in sparse form, as the distances need them: the classes that count,
// ||q_c||^2, and the pixels where q_c != 0 (after the eps cut) with their values.
struct SparseQuery {
    std::vector<int32_t> classes;  // classes that are summed
    std::vector<double> qnorm2;    // per entry of `classes`
    std::vector<int64_t> offsets;  // per entry of `classes`, into pix/val (size classes+1)
    std::vector<int32_t> pix;
    std::vector<float> val;
};

// Builds q_c for the three query kinds. Pixels with q_c(j) <= eps are left out of the support
// (eps = 0 keeps every nonzero: exact). ||q_c||^2 is always exact.
SparseQuery make_sparse_query(const QuerySpec& q, int C, int D, float eps);

// The same q_c dense, for exact distances: each class that counts, ||q_c||^2 (as make_sparse_query computes it)
// and its D values in a row of `stride` >= D floats (zeros after D).
struct DenseQuery {
    std::vector<int32_t> classes;
    std::vector<double> qnorm2;
    std::vector<float> rows;  // classes.size() x stride
};
DenseQuery make_dense_query(const QuerySpec& q, int C, int D, int64_t stride);

// LUT[c][k] = w ||a_{c,k} - q_c / w||^2 = ||q_c||^2 / w - 2 q_c.a_{c,k} + w ||a_{c,k}||^2 for the classes of `sq`
// (rows of classes not used are left untouched), w = photo_weight in (0, 1]: 1 gives the squared L2 distance
// ||q_c - a_{c,k}||^2; w < 1 weighs the photo's own mass less (the ranking is that of ||q_c||^2 - 2 q_c.a +
// w ||a||^2: the extra ||q_c||^2 (1/w - 1) is the same for every photo and keeps the entries >= 0). Entries are
// clamped at 0 against rounding.
// lut: C x K floats. Classes are spread over `threads` threads (<= 0: default).
void build_lut(const Codebook& cb, const SparseQuery& sq, float* lut, int threads = 1, float photo_weight = 1.0f);

// Codes stored column-major: codes[c * stride + i], i < n. `defaults[c]` is the most common code of
// class c; `dense[c]` (optional) says the class has many other codes, so skipping defaults does not pay.
// Only speed depends on these two.
struct Codes {
    const uint8_t* data = nullptr;
    int64_t n = 0;
    int64_t stride = 0;
    int C = 0;
    const uint8_t* defaults = nullptr;
    const uint8_t* dense = nullptr;
};

// Which images may be returned: all, those with mask[i] != 0, or the listed positions.
struct Subset {
    const uint8_t* mask = nullptr;  // n bytes
    const int64_t* ids = nullptr;   // positions, each < n
    int64_t n_ids = 0;
};

// Top-k per query, ascending by (distance, position). out_* are nq x k; counts[q] = entries filled.
struct TopKOut {
    int64_t* ids;
    float* dists;
    int64_t* counts;
};

// Whether scan_pq sums byte-quantized tables first and re-ranks only the images that can still make the
// top-k with the float sums (results identical to the float scan, faster where the SIMD kernel exists).
// Auto: where it pays (see scan_pq.cpp); On: wherever it can (a query with non-finite LUT values cannot);
// Off: never.
enum class QuantizedScan : int { Auto = -1, Off = 0, On = 1 };

// Since the library was loaded: how many queries scan_pq has scanned with the quantized scan, how many
// images it re-ranked with float sums, and how many blocks it summed in float instead, having too many
// candidates (a diagnostic: tests check which paths ran and what the SIMD kernels let through).
struct QuantizedScanStats {
    int64_t queries = 0, reranked = 0, float_blocks = 0;
};
QuantizedScanStats quantized_scan_stats();

// ADC scan: luts is nq x C x K; classes[q] lists the classes summed for query q.
void scan_pq(const Codes& codes, int K, const float* luts, const std::vector<std::vector<int32_t>>& classes, int64_t k,
             const Subset& subset, int threads, const InterruptCheck& interrupt, TopKOut out,
             QuantizedScan quantized = QuantizedScan::Auto);

// Exact maps in blocks (index format 4 on): each photo's uint8 maps (C x D, value v meaning v/255), each class's
// map cut into nb = ceil(D / kMapBlock) blocks of kMapBlock values (the last padded with zeros), of which only
// the blocks holding a nonzero value are stored. Photo i's blocks are [ptr[i], ptr[i+1]); index[t] = c * nb + b
// (class c, block b), strictly increasing within a photo; blocks is M x kMapBlock. A photo whose ptr or index
// entries are out of range is DamagedData, never a read outside the arrays.
constexpr int kMapBlock = 64;
struct BlockMaps {
    const int64_t* ptr = nullptr;
    const uint32_t* index = nullptr;
    const uint8_t* blocks = nullptr;
    int64_t n = 0, n_blocks = 0;  // n_blocks = M
    int C = 0, D = 0;
};
// Exact search over block maps: distances as in build_lut (sum over the query's classes of w ||x_c - q_c / w||^2),
// each class's dot product summed block by block (so a photo's distance is the same in a scan and a re-rank).
void scan_blocks(const BlockMaps& maps, const std::vector<QuerySpec>& queries, int64_t k, const Subset& subset,
                 int threads, const InterruptCheck& interrupt, TopKOut out, float photo_weight = 1.0f);
// Re-ranking: the k nearest of each query's candidates (candidates[q * stride + j], j < counts[q]: distinct
// positions < n), by the distance scan_blocks computes.
void rerank_blocks(const BlockMaps& maps, const std::vector<QuerySpec>& queries, const int64_t* candidates,
                   const int64_t* counts, int64_t stride, int64_t k, int threads, const InterruptCheck& interrupt,
                   TopKOut out, float photo_weight = 1.0f);

// The segmentation network's maps (softmax_pool.cpp): logits (B, h, w, C) float32, classes last, upsampled
// bilinearly to H x W (align_corners, as torch's F.interpolate), softmax over the classes at every upsampled pixel,
// area-averaged to size x size (torch's adaptive_avg_pool2d bins) into out (B, C, size, size). The upsampled logits
// are never stored: each upsampled row is made, its softmax taken and its columns summed into the bins while it is
// in the cache. Threads take (photo, row bin) pairs.
void upsample_softmax_pool(const float* logits, int64_t B, int64_t h, int64_t w, int64_t C, int64_t H, int64_t W,
                           int64_t size, float* out, int threads);

// float16 to float32 (float16.cpp): out[i] = the float16 whose bits are in[i], i < n, exactly, with the active
// level's kernel; threads take chunks of a large array.
void float16_to_float32(const uint16_t* in, float* out, int64_t n, int threads);

// SIMD levels.
enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2 };
std::string simd_level_name(SimdLevel level);
SimdLevel simd_level();                               // the active level
std::vector<SimdLevel> supported_simd_levels();       // compiled in and supported by this CPU
void set_simd_level(SimdLevel level);                 // throws InvalidArgument if unsupported
SimdLevel parse_simd_level(const std::string& name);  // "scalar", "avx2", "avx512"

int default_threads();

}  // namespace segsearch
