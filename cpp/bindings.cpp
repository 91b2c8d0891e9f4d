// pybind11 bindings: the only file that sees Python. Validates array shapes, releases the GIL around
// the core, and turns Ctrl-C into KeyboardInterrupt.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "segsearch/core.hpp"

namespace py = pybind11;
using namespace segsearch;

namespace {

template <class T>
using Arr = py::array_t<T, py::array::c_style>;

[[noreturn]] void bad(const std::string& msg) { throw InvalidArgument(msg); }

// The most threads a call may use: the CPUs this process may run on (more cannot help a memory-bound scan,
// and an absurd count would make OpenMP crash or abort allocating their stacks).
int max_threads() {
#if defined(_OPENMP)
    return std::max(1, omp_get_num_procs());
#else
    return 1;
#endif
}

// A thread count from Python: 0 = the default (OpenMP's maximum), anything larger than max_threads() is
// clamped to it; negative counts are refused. Taken as int64 so that any count a C long holds is clamped.
int bounded_threads(int64_t threads) {
    if (threads < 0) bad("threads must be >= 0 (0 = the default, all CPUs); got " + std::to_string(threads));
    const int64_t cap = max_threads();
    if (threads == 0) return static_cast<int>(std::min<int64_t>(std::max(1, default_threads()), cap));
    return static_cast<int>(std::min(threads, cap));
}

void need_dims(const py::array& a, std::vector<py::ssize_t> shape, const char* name) {
    if (a.ndim() != static_cast<py::ssize_t>(shape.size())) bad(std::string(name) + ": wrong number of dimensions");
    for (size_t i = 0; i < shape.size(); ++i)
        if (shape[i] >= 0 && a.shape(i) != shape[i]) bad(std::string(name) + ": wrong shape");
}

// The codebook's arrays as the core reads them: float32 codebook and block sums, or the compact uint8 codebook
// with uint16 block sums (index format 3). Holds the (possibly converted) arrays for as long as the core uses them.
struct CodebookArrays {
    Arr<float> data_f, block_f;
    Arr<uint8_t> data_u8;
    Arr<uint16_t> block_u16;
    Arr<float> norms;
    Codebook cb;
};

CodebookArrays make_codebook(const py::array& codebook, const Arr<float>& norms,
                             const std::optional<py::array>& block_sums, int block_w) {
    need_dims(codebook, {-1, -1, -1}, "codebook");
    CodebookArrays out;
    Codebook& cb = out.cb;
    const bool bytes = codebook.dtype().is(py::dtype::of<uint8_t>());
    if (!bytes && !codebook.dtype().is(py::dtype::of<float>())) bad("codebook: must be float32 or uint8");
    cb.C = static_cast<int>(codebook.shape(0));
    cb.D = static_cast<int>(codebook.shape(1));
    cb.K = static_cast<int>(codebook.shape(2));
    need_dims(norms, {cb.C, cb.K}, "centroid norms");
    out.norms = norms;
    cb.norms = out.norms.data();
    if (bytes) {
        out.data_u8 = Arr<uint8_t>::ensure(codebook);
        if (!out.data_u8) bad("codebook: could not be read as a C-contiguous uint8 array");
        cb.data_u8 = out.data_u8.data();
    } else {
        out.data_f = Arr<float>::ensure(codebook);
        if (!out.data_f) bad("codebook: could not be read as a C-contiguous float32 array");
        cb.data = out.data_f.data();
    }
    if (block_sums) {
        int n = 0;
        while (n * n < cb.D) ++n;
        if (n * n != cb.D) bad("block sums need square maps");
        if (block_w < 1 || block_w > n) bad("block width must be in 1..n");
        const int nb = (n + block_w - 1) / block_w;
        need_dims(*block_sums, {cb.C, static_cast<py::ssize_t>(n) * nb, cb.K}, "block sums");
        if (bytes) {
            if (!block_sums->dtype().is(py::dtype::of<uint16_t>()))
                bad("block sums of a uint8 codebook must be uint16");
            out.block_u16 = Arr<uint16_t>::ensure(*block_sums);
            cb.block_sums_u16 = out.block_u16.data();
        } else {
            if (!block_sums->dtype().is(py::dtype::of<float>()))
                bad("block sums of a float32 codebook must be float32");
            out.block_f = Arr<float>::ensure(*block_sums);
            cb.block_sums = out.block_f.data();
        }
        cb.n = n;
        cb.block_w = block_w;
    }
    return out;
}

QuerySpec make_spec(int kind, const std::optional<Arr<float>>& probs, const std::optional<Arr<int32_t>>& labels, int C,
                    int D, const std::optional<Arr<float>>& class_weights) {
    if (kind < 0 || kind > 2) bad("query kind must be 0 (image), 1 (sketch) or 2 (image + sketch)");
    QuerySpec s;
    s.kind = static_cast<QueryKind>(kind);
    if (s.kind != QueryKind::Sketch) {
        if (!probs) bad("this query kind needs probability maps");
        need_dims(*probs, {C, D}, "query probabilities");
        s.probs = probs->data();
    }
    if (s.kind != QueryKind::Image) {
        if (!labels) bad("this query kind needs a label map");
        need_dims(*labels, {D}, "query labels");
        s.labels = labels->data();
    }
    if (class_weights) {
        need_dims(*class_weights, {C}, "class weights");
        s.class_weights = class_weights->data();
    }
    return s;
}

// A batch of queries: one kind, probability maps and label map per query (the arrays must outlive the specs).
std::vector<QuerySpec> make_specs(const std::vector<int>& kinds, const std::vector<std::optional<Arr<float>>>& probs,
                                  const std::vector<std::optional<Arr<int32_t>>>& labels, int C, int D,
                                  const std::optional<Arr<float>>& class_weights) {
    const size_t nq = kinds.size();
    if (probs.size() != nq || labels.size() != nq) bad("kinds, probs and labels must have one entry per query");
    std::vector<QuerySpec> specs;
    for (size_t q = 0; q < nq; ++q) specs.push_back(make_spec(kinds[q], probs[q], labels[q], C, D, class_weights));
    return specs;
}

// The codes (C, N) as the scan reads them, with their per-class default code (< K) and dense flags.
Codes make_codes(const py::array_t<uint8_t>& codes, const Arr<uint8_t>& defaults,
                 const std::optional<Arr<uint8_t>>& dense, int K) {
    if (codes.ndim() != 2 || codes.strides(1) != 1 || codes.strides(0) < codes.shape(1))
        bad("codes must be a (C, N) uint8 array with contiguous rows");
    Codes cv;
    cv.C = static_cast<int>(codes.shape(0));
    cv.n = codes.shape(1);
    cv.stride = codes.strides(0);
    cv.data = codes.data();
    need_dims(defaults, {cv.C}, "defaults");
    cv.defaults = defaults.data();
    for (int c = 0; c < cv.C; ++c)
        if (cv.defaults[c] >= K) bad("default code out of range");
    if (dense) {
        need_dims(*dense, {cv.C}, "dense");
        cv.dense = dense->data();
    }
    return cv;
}

Subset make_subset(const std::optional<Arr<uint8_t>>& mask, const std::optional<Arr<int64_t>>& ids, int64_t n) {
    Subset s;
    if (mask) {
        need_dims(*mask, {n}, "subset mask");
        s.mask = mask->data();
    }
    if (ids) {
        need_dims(*ids, {-1}, "subset ids");
        const int64_t* p = ids->data();
        for (py::ssize_t i = 0; i < ids->shape(0); ++i)
            if (p[i] < 0 || p[i] >= n) bad("subset position out of range");
        s.ids = p;
        s.n_ids = ids->shape(0);
    }
    return s;
}

// The quantized-scan mode of scan_pq: the argument if given, else SEGSEARCH_QUANTIZED_SCAN=0|1 (read per call),
// else automatic.
QuantizedScan quantized_mode(const std::optional<bool>& arg) {
    if (arg) return *arg ? QuantizedScan::On : QuantizedScan::Off;
    const char* env = std::getenv("SEGSEARCH_QUANTIZED_SCAN");
    if (!env || !*env) return QuantizedScan::Auto;
    const std::string v(env);
    if (v == "0") return QuantizedScan::Off;
    if (v == "1") return QuantizedScan::On;
    bad("SEGSEARCH_QUANTIZED_SCAN must be 0 or 1 (or unset: automatic); got '" + v + "'");
}

InterruptCheck python_interrupt() {
    return []() {
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    };
}

py::tuple run_search(int nq, int64_t k, const std::function<void(TopKOut)>& fn) {
    if (k <= 0) bad("k must be >= 1");
    Arr<int64_t> ids({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(k)});
    Arr<float> dists({static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(k)});
    Arr<int64_t> counts(nq);
    TopKOut out{ids.mutable_data(), dists.mutable_data(), counts.mutable_data()};
    try {
        py::gil_scoped_release release;
        fn(out);
    } catch (const Interrupted&) {
        throw py::error_already_set();
    }
    return py::make_tuple(ids, dists, counts);
}

// Block maps (see core.hpp) from their three arrays, for maps of C classes of D values.
BlockMaps make_block_maps(const Arr<int64_t>& ptr, const Arr<uint32_t>& index, const Arr<uint8_t>& blocks, int C,
                          int D) {
    if (C < 1 || D < 1) bad("block maps: C and D must be >= 1");
    need_dims(ptr, {-1}, "block offsets");
    need_dims(index, {-1}, "block index");
    need_dims(blocks, {index.shape(0), kMapBlock}, "blocks");
    if (ptr.shape(0) < 1) bad("block offsets: need n + 1 entries");
    BlockMaps bm;
    bm.ptr = ptr.data();
    bm.index = index.data();
    bm.blocks = blocks.data();
    bm.n = ptr.shape(0) - 1;
    bm.n_blocks = index.shape(0);
    bm.C = C;
    bm.D = D;
    return bm;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    // Damaged stored data found while reading it: segsearch.IndexFormatError (imported when first needed, as the
    // package imports this module).
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const DamagedData& e) {
            py::object err = py::module_::import("segsearch.errors").attr("IndexFormatError");
            PyErr_SetString(err.ptr(),
                            (std::string(e.what()) + "; load the index with verify=True to check it").c_str());
        }
    });
    m.doc() = "segsearch C++ core: LUT builders, SIMD PQ scan, exact search and re-ranking over block maps";

    py::enum_<QueryKind>(m, "QueryKind", py::arithmetic(),
                         "The three query kinds, as the core numbers them (functions taking `kind` accept these or\n"
                         "their integers 0, 1, 2).")
        .value("image", QueryKind::Image, "a photo's maps: all classes summed")
        .value("sketch", QueryKind::Sketch, "a label map: only the drawn classes summed")
        .value("image_and_sketch", QueryKind::ImageSketch, "a photo with drawn pixels overriding its maps");

    m.def(
        "simd_level", []() { return simd_level_name(simd_level()); }, "The SIMD level in use.");
    m.def(
        "supported_simd_levels",
        []() {
            std::vector<std::string> out;
            for (SimdLevel l : supported_simd_levels()) out.push_back(simd_level_name(l));
            return out;
        },
        "SIMD levels compiled in and supported by this CPU.");
    m.def(
        "set_simd_level", [](const std::string& name) { set_simd_level(parse_simd_level(name)); }, py::arg("level"),
        "Force a SIMD level: 'scalar', 'avx2' or 'avx512'.");
    m.def(
        "default_threads", []() { return bounded_threads(0); },
        "Threads used when none are given: OpenMP's maximum, at most max_threads().");
    m.def("max_threads", &max_threads,
          "The most threads a call uses: the CPUs this process may run on; larger counts are clamped to it.");

    m.def(
        "upsample_softmax_pool",
        [](const Arr<float>& logits, int64_t H, int64_t W, int64_t size, int64_t threads_arg) {
            const int threads = bounded_threads(threads_arg);
            if (logits.ndim() != 4) bad("logits must be a (B, h, w, C) float32 array");
            if (H < 1 || W < 1 || size < 1) bad("H, W and size must be >= 1");
            if (H > (1 << 16) || W > (1 << 16) || size > (1 << 16)) bad("H, W and size must be <= 65536");
            const py::ssize_t B = logits.shape(0), h = logits.shape(1), w = logits.shape(2), C = logits.shape(3);
            if (h < 1 || w < 1 || C < 1) bad("logits must have h, w, C >= 1");
            Arr<float> out({B, C, static_cast<py::ssize_t>(size), static_cast<py::ssize_t>(size)});
            float* o = out.mutable_data();
            const float* x = logits.data();
            {
                py::gil_scoped_release release;
                upsample_softmax_pool(x, B, h, w, C, H, W, size, o, threads);
            }
            return out;
        },
        py::arg("logits"), py::arg("H"), py::arg("W"), py::arg("size"), py::arg("threads") = 0,
        "Softmax maps (B, C, size, size) of logits (B, h, w, C) (float32, classes last) upsampled bilinearly to\n"
        "H x W (align_corners=True, as torch's F.interpolate), each upsampled pixel's softmax over the classes\n"
        "area-averaged as adaptive_avg_pool2d does, without storing the upsampled logits.");
    m.def(
        "float16_to_float32",
        [](const py::array_t<uint16_t, py::array::c_style | py::array::forcecast>& bits, int64_t threads_arg) {
            const int threads = bounded_threads(threads_arg);
            std::vector<py::ssize_t> shape(bits.shape(), bits.shape() + bits.ndim());
            Arr<float> out(shape);
            const uint16_t* in = bits.data();
            float* o = out.mutable_data();
            const int64_t n = static_cast<int64_t>(bits.size());
            {
                py::gil_scoped_release release;
                float16_to_float32(in, o, n, threads);
            }
            return out;
        },
        py::arg("bits"), py::arg("threads") = 0,
        "float32 values of float16 numbers given by their bits (a uint16 array, e.g. a.view(np.uint16)), same\n"
        "shape, exactly as numpy's astype(np.float32) gives them, and faster on subnormal values.");
    m.def(
        "code_counts",
        [](const py::array_t<uint8_t>& codes, int64_t threads_arg) {
            const int threads = bounded_threads(threads_arg);
            if (codes.ndim() != 2 || (codes.shape(1) > 1 && codes.strides(1) != 1))
                bad("codes must be a (C, N) uint8 array with contiguous rows");
            const py::ssize_t C = codes.shape(0), N = codes.shape(1), stride = codes.strides(0);
            Arr<int64_t> out({C, static_cast<py::ssize_t>(256)});
            int64_t* o = out.mutable_data();
            const uint8_t* base = codes.data();
            {
                py::gil_scoped_release release;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1 && C > 1)
#endif
                for (py::ssize_t c = 0; c < C; ++c) {
                    int64_t h[4][256] = {};  // four histograms: no store-to-load stall on runs of one value
                    const uint8_t* row = base + c * stride;
                    py::ssize_t i = 0;
                    for (; i + 4 <= N; i += 4) {
                        ++h[0][row[i]];
                        ++h[1][row[i + 1]];
                        ++h[2][row[i + 2]];
                        ++h[3][row[i + 3]];
                    }
                    for (; i < N; ++i) ++h[0][row[i]];
                    for (int v = 0; v < 256; ++v) o[c * 256 + v] = h[0][v] + h[1][v] + h[2][v] + h[3][v];
                }
            }
            return out;
        },
        py::arg("codes"), py::arg("threads") = 0,
        "How many times each value 0..255 occurs in each row of (C, N) uint8 codes: int64 (C, 256).\n"
        "threads: 0 = the default; more than max_threads() are clamped to it; negative: ValueError.");

    py::class_<CodebookArrays>(m, "Codebook",
                               "A PQ codebook bound once for the core: its arrays checked and kept, then passed to\n"
                               "build_lut / build_luts without being checked again.")
        .def(py::init(&make_codebook), py::arg("codebook"), py::arg("norms"), py::arg("block_sums") = py::none(),
             py::arg("block_w") = 16,
             "codebook: position-major (C, D, K), float32 or uint8 (value v means v/255); norms: the squared\n"
             "centroid norms (C, K) float32; block_sums (optional, C x n*ceil(n/block_w) x K; float32, or uint16\n"
             "for a uint8 codebook): the codebook summed over runs of block_w pixels of a row.")
        .def_property_readonly("num_classes", [](const CodebookArrays& a) { return a.cb.C; })
        .def_property_readonly("dim", [](const CodebookArrays& a) { return a.cb.D; })
        .def_property_readonly("n_centroids", [](const CodebookArrays& a) { return a.cb.K; })
        .def_property_readonly(
            "compact", [](const CodebookArrays& a) { return a.cb.data_u8 != nullptr; },
            "Whether the values are bytes (v / 255).");

    m.def(
        "build_lut",
        [](const CodebookArrays& arrays, int kind, std::optional<Arr<float>> probs, std::optional<Arr<int32_t>> labels,
           float eps, int64_t threads_arg, std::optional<Arr<float>> class_weights, float photo_weight) {
            const int threads = bounded_threads(threads_arg);
            const Codebook& cb = arrays.cb;
            QuerySpec spec = make_spec(kind, probs, labels, cb.C, cb.D, class_weights);
            Arr<float> lut({cb.C, cb.K});
            std::vector<int32_t> classes;
            {
                py::gil_scoped_release release;
                float* out = lut.mutable_data();
                std::fill(out, out + static_cast<int64_t>(cb.C) * cb.K, 0.0f);
                SparseQuery sq = make_sparse_query(spec, cb.C, cb.D, eps);
                build_lut(cb, sq, out, threads, photo_weight);
                classes = sq.classes;
            }
            Arr<int32_t> cls(static_cast<py::ssize_t>(classes.size()));
            std::copy(classes.begin(), classes.end(), cls.mutable_data());
            return py::make_tuple(lut, cls);
        },
        py::arg("codebook"), py::arg("kind"), py::arg("probs"), py::arg("labels"), py::arg("eps"),
        py::arg("threads") = 0, py::arg("class_weights") = py::none(), py::arg("photo_weight") = 1.0f,
        "LUT (C, K) of one query against a bound Codebook, and the classes it sums.\n"
        "class_weights (optional, C, > 0): reweight the query photo's maps per pixel (w_c p_c / sum w p);\n"
        "photo_weight w in (0, 1]: LUT = w ||a - q_c / w||^2 = ||q_c||^2 / w - 2 q_c.a + w ||a||^2 (1: squared L2).\n"
        "threads: 0 = the default; more than max_threads() are clamped to it; negative: ValueError.");

    m.def(
        "scan_pq",
        [](const py::array_t<uint8_t>& codes, const Arr<uint8_t>& defaults, const Arr<float>& luts,
           const std::vector<Arr<int32_t>>& classes, int64_t k, std::optional<Arr<uint8_t>> mask,
           std::optional<Arr<int64_t>> ids, int64_t threads_arg, std::optional<Arr<uint8_t>> dense,
           std::optional<bool> quantized) {
            const int threads = bounded_threads(threads_arg);
            const QuantizedScan mode = quantized_mode(quantized);
            need_dims(luts, {-1, codes.ndim() == 2 ? codes.shape(0) : -1, -1}, "luts");
            const int K = static_cast<int>(luts.shape(2));
            const Codes cv = make_codes(codes, defaults, dense, K);
            const int nq = static_cast<int>(luts.shape(0));
            if (static_cast<int>(classes.size()) != nq) bad("one class list per LUT is needed");
            std::vector<std::vector<int32_t>> cls(nq);
            for (int q = 0; q < nq; ++q) {
                need_dims(classes[q], {-1}, "classes");
                cls[q].assign(classes[q].data(), classes[q].data() + classes[q].shape(0));
            }
            Subset sub = make_subset(mask, ids, cv.n);
            const int64_t kk = std::max<int64_t>(1, k);
            return run_search(nq, kk, [&](TopKOut out) {
                scan_pq(cv, K, luts.data(), cls, k, sub, threads, python_interrupt(), out, mode);
            });
        },
        py::arg("codes"), py::arg("defaults"), py::arg("luts"), py::arg("classes"), py::arg("k"),
        py::arg("mask") = py::none(), py::arg("ids") = py::none(), py::arg("threads") = 0,
        py::arg("dense") = py::none(), py::arg("quantized") = py::none(),
        "Top-k ADC scan of (C, N) codes for a batch of LUTs (nq, C, K). defaults: most common code per class;\n"
        "dense: optional per-class flag, 1 where most codes are not the default (speed only).\n"
        "threads: 0 = the default; more than max_threads() are clamped to it; negative: ValueError.\n"
        "quantized: sum byte-quantized tables first and re-rank the survivors with the float sums (identical\n"
        "results; speed only): True / False force it on / off, None = SEGSEARCH_QUANTIZED_SCAN=0|1 if set, else\n"
        "automatic (where this CPU's kernel beats the float scan).");

    m.def(
        "build_luts",
        [](const CodebookArrays& arrays, const std::vector<int>& kinds,
           const std::vector<std::optional<Arr<float>>>& probs, const std::vector<std::optional<Arr<int32_t>>>& labels,
           float eps, int64_t threads_arg, std::optional<Arr<float>> class_weights, float photo_weight) {
            const int threads = bounded_threads(threads_arg);
            const Codebook& cb = arrays.cb;
            const std::vector<QuerySpec> specs = make_specs(kinds, probs, labels, cb.C, cb.D, class_weights);
            const size_t nq = specs.size();
            Arr<float> luts(
                {static_cast<py::ssize_t>(nq), static_cast<py::ssize_t>(cb.C), static_cast<py::ssize_t>(cb.K)});
            std::vector<std::vector<int32_t>> classes(nq);
            {
                py::gil_scoped_release release;
                float* out = luts.mutable_data();
                std::fill(out, out + nq * static_cast<size_t>(cb.C) * cb.K, 0.0f);
                for (size_t q = 0; q < nq; ++q) {  // each query's LUT, its classes spread over the threads
                    const SparseQuery sq = make_sparse_query(specs[q], cb.C, cb.D, eps);
                    build_lut(cb, sq, out + q * static_cast<size_t>(cb.C) * cb.K, threads, photo_weight);
                    classes[q] = sq.classes;
                }
            }
            py::list cls;
            for (const auto& c : classes) {
                Arr<int32_t> a(static_cast<py::ssize_t>(c.size()));
                std::copy(c.begin(), c.end(), a.mutable_data());
                cls.append(a);
            }
            return py::make_tuple(luts, cls);
        },
        py::arg("codebook"), py::arg("kinds"), py::arg("probs"), py::arg("labels"), py::arg("eps"),
        py::arg("threads") = 0, py::arg("class_weights") = py::none(), py::arg("photo_weight") = 1.0f,
        "The LUTs (nq, C, K) of a batch of queries against a bound Codebook (each as build_lut) and, per query,\n"
        "the classes it sums: the plan every PQ search then scans with scan_pq, once per part of the index.");

    m.def(
        "quantized_scan_stats",
        []() {
            const QuantizedScanStats s = quantized_scan_stats();
            return py::make_tuple(s.queries, s.reranked, s.float_blocks);
        },
        "Since the module was loaded: (queries scan_pq scanned with the quantized scan, images it re-ranked\n"
        "with float sums, blocks it summed in float instead). A diagnostic for tests and benchmarks.");

    m.def(
        "search_blocks",
        [](const Arr<int64_t>& ptr, const Arr<uint32_t>& index, const Arr<uint8_t>& blocks, int C, int D,
           const std::vector<int>& kinds, const std::vector<std::optional<Arr<float>>>& probs,
           const std::vector<std::optional<Arr<int32_t>>>& labels, int64_t k, std::optional<Arr<uint8_t>> mask,
           std::optional<Arr<int64_t>> ids, int64_t threads_arg, std::optional<Arr<float>> class_weights,
           float photo_weight) {
            const int threads = bounded_threads(threads_arg);
            const BlockMaps bm = make_block_maps(ptr, index, blocks, C, D);
            const std::vector<QuerySpec> specs = make_specs(kinds, probs, labels, C, D, class_weights);
            Subset sub = make_subset(mask, ids, bm.n);
            return run_search(static_cast<int>(specs.size()), std::max<int64_t>(1, k), [&](TopKOut out) {
                scan_blocks(bm, specs, k, sub, threads, python_interrupt(), out, photo_weight);
            });
        },
        py::arg("ptr"), py::arg("index"), py::arg("blocks"), py::arg("num_classes"), py::arg("dim"), py::arg("kinds"),
        py::arg("probs"), py::arg("labels"), py::arg("k"), py::arg("mask") = py::none(), py::arg("ids") = py::none(),
        py::arg("threads") = 0, py::arg("class_weights") = py::none(), py::arg("photo_weight") = 1.0f,
        "Exact top-k over block maps: ptr int64 (N+1), index uint32 (M,) = class * nb + block, blocks uint8\n"
        "(M, 64) (value/255), nb = ceil(dim / 64). class_weights, photo_weight: as in build_lut.\n"
        "threads: 0 = the default; more than max_threads() are clamped to it; negative: ValueError.");

    m.def(
        "rerank_blocks",
        [](const Arr<int64_t>& ptr, const Arr<uint32_t>& index, const Arr<uint8_t>& blocks, int C, int D,
           const std::vector<int>& kinds, const std::vector<std::optional<Arr<float>>>& probs,
           const std::vector<std::optional<Arr<int32_t>>>& labels, const Arr<int64_t>& candidates,
           const Arr<int64_t>& counts, int64_t k, int64_t threads_arg, std::optional<Arr<float>> class_weights,
           float photo_weight) {
            const int threads = bounded_threads(threads_arg);
            const BlockMaps bm = make_block_maps(ptr, index, blocks, C, D);
            const std::vector<QuerySpec> specs = make_specs(kinds, probs, labels, C, D, class_weights);
            const int nq = static_cast<int>(specs.size());
            need_dims(candidates, {nq, -1}, "candidates");
            need_dims(counts, {nq}, "candidate counts");
            const int64_t stride = candidates.shape(1);
            return run_search(nq, std::max<int64_t>(1, k), [&](TopKOut out) {
                rerank_blocks(bm, specs, candidates.data(), counts.data(), stride, k, threads, python_interrupt(), out,
                              photo_weight);
            });
        },
        py::arg("ptr"), py::arg("index"), py::arg("blocks"), py::arg("num_classes"), py::arg("dim"), py::arg("kinds"),
        py::arg("probs"), py::arg("labels"), py::arg("candidates"), py::arg("counts"), py::arg("k"),
        py::arg("threads") = 0, py::arg("class_weights") = py::none(), py::arg("photo_weight") = 1.0f,
        "Re-ranking: per query the k nearest of its candidates (nq, R) int64 (row q's first counts[q]: distinct\n"
        "positions < N), by the distance search_blocks computes. Arrays and options as in search_blocks.");
}
