// The certified step's innermost loop alone: Rump's per-sample product,
// the plain sums and the selection's threshold filter fused (rump_select),
// the winners' bitmaps decoded, then their sorted insert (insert_sorted),
// one thread, on
// synthetic factors of a dense layer's shape. Every kernel variant this CPU
// supports is timed in the same run, the variants taking turns so that the
// machine's load hits them alike; the ratio is against the baseline variant.
//
//   agt_kernel_bench [--cols N] [--rows N] [--weight-rows N] [--k N]
//                    [--case removal|features] [--rows-per-call N] [--repeats N]
//   agt_kernel_bench --gemm MxKxN [--repeats N]
//
// Two figures per variant: the whole loop as a step runs it (thresholds
// start at -infinity and rise, about k (1 + ln(rows / k)) / rows of the
// values are inserted), and the loop with no winner at all (thresholds
// +infinity, nothing inserted): the arithmetic and the filter alone.
//
// --gemm times the kernels' fixed-order product (gemm) of an M x K by a
// K x N row-major matrix under every variant against Eigen's product of the
// same matrices in the same run (Eigen as this build compiles it: no -march,
// so SSE2), and checks that every variant gives the same bits.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "core/backend/simd/isa.h"
#include "core/backend/simd/kernels.h"

namespace {

using agt::simd::Kernels;
using agt::simd::RumpSelectArgs;

struct Shape {
  int cols = 784;        // inputs of the layer (a weight row's columns)
  int rows = 1000;       // samples of the batch
  int weight_rows = 20;  // weight rows of one task
  int k = 10;
  bool poison = true;  // features: Theorem 9's differences; removal: the bounds
  int per_call = 16;   // sample rows per rump_select call (1 .. kSelectRows)
};

// The factors of `rows` samples: input midpoints (a point input for the
// bounds, a radius-0.01 box for the poisoned input) and output-gradient
// midpoints and radii per weight row.
struct Factors {
  std::vector<double> mz, amz, rz, m, r;
  explicit Factors(const Shape& s) {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal;
    const size_t n = static_cast<size_t>(s.rows) * s.cols;
    mz.resize(n);
    amz.resize(n);
    rz.assign(n, 0.01);
    for (size_t i = 0; i < n; ++i) {
      mz[i] = normal(rng);
      amz[i] = std::abs(mz[i]);
    }
    const size_t g = static_cast<size_t>(s.rows) * s.weight_rows;
    m.resize(g);
    r.resize(g);
    for (size_t i = 0; i < g; ++i) {
      m[i] = normal(rng);
      r[i] = 0.1 * std::abs(normal(rng));
    }
  }
};

// One pass over the batch as the CPU backend's fused task takes it (blocks of
// 16 samples, weight row after weight row, s.per_call samples per kernel
// call); returns the seconds and adds the inserted values to *inserted.
double RunOnce(const Kernels& kern, const Shape& s, const Factors& f, bool winners,
               long* inserted) {
  const size_t params = static_cast<size_t>(s.weight_rows) * s.cols;
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> sum_lo(params, 0.0), sum_hi(params, 0.0);
  std::vector<double> thr_lo(params, winners ? -inf : inf), thr_hi(params, winners ? -inf : inf);
  std::vector<double> slots_lo(params * s.k, -inf), slots_hi(params * s.k, -inf);
  constexpr int64_t kWords = agt::simd::kSelectRows * agt::simd::kSelectWords;
  std::vector<uint64_t> win_lo(kWords), win_hi(kWords);
  std::vector<int32_t> idx(s.cols);
  std::vector<double> val(s.cols);
  agt::simd::RumpRow bound[agt::simd::kSelectRows], perturbed[agt::simd::kSelectRows];
  const auto t0 = std::chrono::steady_clock::now();
  constexpr int kBlock = 16;
  for (int r0 = 0; r0 < s.rows; r0 += kBlock) {
    const int r1 = std::min(s.rows, r0 + kBlock);
    for (int o = 0; o < s.weight_rows; ++o) {
      const size_t at = static_cast<size_t>(o) * s.cols;
      for (int c0 = r0; c0 < r1; c0 += s.per_call) {
        const int c1 = std::min(r1, c0 + s.per_call);
        for (int row = c0; row < c1; ++row) {
          const size_t in = static_cast<size_t>(row) * s.cols;
          const size_t g = static_cast<size_t>(row) * s.weight_rows + o;
          bound[row - c0] = {f.m[g], f.r[g], &f.mz[in], &f.amz[in], nullptr};
          perturbed[row - c0] = {f.m[g], 1.1 * f.r[g], &f.mz[in], &f.amz[in], &f.rz[in]};
        }
        RumpSelectArgs a;
        a.bound = bound;
        a.perturbed = perturbed;
        a.rows = c1 - c0;
        a.poison = s.poison;
        a.n = s.cols;
        // Removal keeps the k largest lower bounds and the k smallest upper
        // bounds (stored negated); poisoning the k largest differences.
        a.negate_low = s.poison;
        a.negate_high = !s.poison;
        a.bound_sum_low = &sum_lo[at];
        a.bound_sum_high = &sum_hi[at];
        a.thr_low = &thr_lo[at];
        a.thr_high = &thr_hi[at];
        a.win_low = win_lo.data();
        a.win_high = win_hi.data();
        kern.rump_select(a);
        // As Aggregator::AddRumpRows: row by row, each bitmap decoded, its
        // candidates' values recomputed against the thresholds as they are
        // now, then inserted.
        for (int i = 0; i < c1 - c0; ++i) {
          for (const bool high : {false, true}) {
            const uint64_t* bits = (high ? win_hi : win_lo).data() + i * agt::simd::kSelectWords;
            int64_t count = agt::simd::WinnerColumns(bits, s.cols, idx.data());
            count = kern.rump_winner_values(a, i, high, idx.data(), count, val.data());
            *inserted += count;
            kern.insert_sorted(&(high ? slots_hi : slots_lo)[at * s.k], s.k, idx.data(),
                               val.data(), count, &(high ? thr_hi : thr_lo)[at]);
          }
        }
      }
    }
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename Fn>
double BestOf(int repeats, Fn&& fn) {
  double best = 1e300;
  for (int rep = 0; rep <= repeats; ++rep) {  // pass 0 warms up
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep > 0) best = std::min(best, t);
  }
  return best;
}

int RunGemm(int m, int k, int n, int repeats) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  RowMatrix a(m, k), b(k, n);
  for (Eigen::Index i = 0; i < a.size(); ++i) a.data()[i] = normal(rng);
  for (Eigen::Index i = 0; i < b.size(); ++i) b.data()[i] = normal(rng);
  RowMatrix c(m, n);
  const double eigen = BestOf(repeats, [&] { c.noalias() = a * b; });
  const RowMatrix reference = c;
  const std::vector<agt::simd::Isa> isas = agt::simd::SupportedIsas();
  std::vector<RowMatrix> out(isas.size(), RowMatrix(m, n));
  std::vector<double> best(isas.size());
  for (size_t v = 0; v < isas.size(); ++v) {
    (void)agt::simd::SetIsaForTesting(isas[v]);
    const Kernels& kern = agt::simd::ActiveKernels();
    best[v] = BestOf(repeats, [&] {
      kern.gemm(m, n, k, a.data(), k, b.data(), n, out[v].data(), n, /*accumulate=*/false);
    });
  }
  const double flop = 2.0 * m * k * n;
  std::printf("gemm %d x %d times %d x %d, one thread, best of %d\n", m, k, k, n, repeats);
  std::printf("%-16s %12s %10s %14s %s\n", "product", "time [ms]", "GFlop/s", "Eigen / this",
              "max |this - Eigen|");
  std::printf("%-16s %12.3f %10.2f %14.2f\n", "Eigen", eigen * 1e3, flop / eigen * 1e-9, 1.0);
  bool same = true;
  for (size_t v = 0; v < isas.size(); ++v) {
    same = same && std::memcmp(out[v].data(), out[0].data(), sizeof(double) * out[0].size()) == 0;
    std::printf("%-16s %12.3f %10.2f %14.2f %.3g\n",
                ("gemm " + std::string(agt::simd::IsaName(isas[v]))).c_str(), best[v] * 1e3,
                flop / best[v] * 1e-9, eigen / best[v], (out[v] - reference).cwiseAbs().maxCoeff());
  }
  std::printf("every variant the same bits: %s\n", same ? "yes" : "NO");
  return same ? 0 : 1;
}

int Usage(const char* prog, int code) {
  std::printf(
      "usage: %s [--cols N] [--rows N] [--weight-rows N] [--k N]\n"
      "       [--case removal|features] [--rows-per-call N] [--repeats N]\n"
      "       %s --gemm MxKxN [--repeats N]\n"
      "Times the fused Rump product + sums + threshold filter (rump_select) and\n"
      "the sorted insert of its winners, one thread, under every kernel variant\n"
      "this CPU supports, best of N (default 9) passes over rows x weight-rows x\n"
      "cols values (default 1000 x 20 x 784: one task of the 784-128-10 model),\n"
      "k = 10 kept per side. Ratio: baseline variant / this variant.\n"
      "--rows-per-call: samples per rump_select call, 1..16 (default 16, as the\n"
      "CPU backend calls it; 1 gives each sample its own call).\n"
      "--gemm: the kernels' fixed-order matrix product (M x K times K x N) under\n"
      "every variant against Eigen's in the same run (e.g. 256x784x128: one row\n"
      "chunk of the 784-128-10 model's first layer).\n",
      prog, prog);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  Shape shape;
  int repeats = 9;
  int gemm_m = 0, gemm_k = 0, gemm_n = 0;
  for (int i = 1; i < argc; ++i) {
    const bool has_value = i + 1 < argc;
    auto number = [&](int* out, int min) {
      *out = std::atoi(argv[++i]);
      return *out >= min;
    };
    bool ok = true;
    if (!std::strcmp(argv[i], "--cols") && has_value) {
      ok = number(&shape.cols, 1) && shape.cols <= agt::simd::kFilterSpan;
    } else if (!std::strcmp(argv[i], "--rows") && has_value) {
      ok = number(&shape.rows, 1);
    } else if (!std::strcmp(argv[i], "--weight-rows") && has_value) {
      ok = number(&shape.weight_rows, 1);
    } else if (!std::strcmp(argv[i], "--k") && has_value) {
      ok = number(&shape.k, 1) && shape.k <= 32;
    } else if (!std::strcmp(argv[i], "--rows-per-call") && has_value) {
      ok = number(&shape.per_call, 1) && shape.per_call <= agt::simd::kSelectRows;
    } else if (!std::strcmp(argv[i], "--repeats") && has_value) {
      ok = number(&repeats, 1);
    } else if (!std::strcmp(argv[i], "--gemm") && has_value) {
      ok = std::sscanf(argv[++i], "%dx%dx%d", &gemm_m, &gemm_k, &gemm_n) == 3 && gemm_m >= 1 &&
           gemm_k >= 1 && gemm_n >= 1;
    } else if (!std::strcmp(argv[i], "--case") && has_value) {
      const std::string c = argv[++i];
      ok = c == "removal" || c == "features";
      shape.poison = c == "features";
    } else {
      return Usage(argv[0], std::strcmp(argv[i], "--help") == 0 ? 0 : 2);
    }
    if (!ok) {
      std::fprintf(stderr,
                   "%s: bad value '%s' for %s (cols 1..%ld, k 1..32, rows-per-call 1..16, gemm MxKxN, "
                   "others >= 1; case removal or features)\n",
                   argv[0], argv[i], argv[i - 1], static_cast<long>(agt::simd::kFilterSpan));
      return 2;
    }
  }
  if (gemm_m > 0) return RunGemm(gemm_m, gemm_k, gemm_n, repeats);
  const Factors factors(shape);
  const std::vector<agt::simd::Isa> isas = agt::simd::SupportedIsas();
  std::vector<double> best_all(isas.size(), 1e300), best_none(isas.size(), 1e300);
  long inserted = 0;
  for (int rep = 0; rep <= repeats; ++rep) {  // pass 0 warms up
    for (size_t v = 0; v < isas.size(); ++v) {
      (void)agt::simd::SetIsaForTesting(isas[v]);  // supported: SupportedIsas()
      const Kernels& kern = agt::simd::ActiveKernels();
      long ins = 0;
      const double all = RunOnce(kern, shape, factors, /*winners=*/true, &ins);
      long none_ins = 0;
      const double none = RunOnce(kern, shape, factors, /*winners=*/false, &none_ins);
      if (rep > 0) {
        best_all[v] = std::min(best_all[v], all);
        best_none[v] = std::min(best_none[v], none);
      }
      inserted = ins;
    }
  }
  const double values = static_cast<double>(shape.rows) * shape.weight_rows * shape.cols;
  std::printf(
      "rump_select + insert_sorted, %s, %d cols x %d weight rows x %d rows, k=%d, %d rows per "
      "call, one thread, best of %d\n",
      shape.poison ? "features (Theorem 9's differences)" : "removal (bounds)", shape.cols,
      shape.weight_rows, shape.rows, shape.k, shape.per_call, repeats);
  std::printf("inserted: %.2f%% of the values per side\n", 100.0 * inserted / values / 2.0);
  std::printf("%-10s %16s %10s %20s %10s\n", "variant", "step [ns/value]", "ratio",
              "no winners [ns/value]", "ratio");
  for (size_t v = 0; v < isas.size(); ++v) {
    std::printf("%-10s %16.3f %10.2f %20.3f %10.2f\n",
                std::string(agt::simd::IsaName(isas[v])).c_str(), best_all[v] / values * 1e9,
                best_all[0] / best_all[v], best_none[v] / values * 1e9,
                best_none[0] / best_none[v]);
  }
  return 0;
}
