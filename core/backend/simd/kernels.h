// The hot loops of a certified step as a table of plain functions, compiled
// once per instruction set (kernels_baseline.cc, kernels_avx2.cc,
// kernels_avx512.cc, all from kernels_impl.inc) and chosen at run time
// (isa.h). The table is what callers hold; they never see which variant runs.
//
// Bit-identity: every kernel is element-wise (or, for the filter, a set of
// exact comparisons; for gemm, one running sum per element; for mid_rad's
// and radius_range's range, exact minima and maxima), each element's
// operations are written in one fixed order, and the units are compiled with -ffp-contract=off, so
// no variant fuses a multiply and an add. So every variant returns the same doubles, bit for bit
// (tests/core/isa_test.cc checks it, and CI runs the golden and determinism tests under each
// variant).
//
// This header is included by the per-ISA units: it declares only plain types
// (no inline functions, nothing from Eigen), so that no inline definition is
// compiled with AVX instructions and then picked by the linker for baseline
// code.
#ifndef AGT_CORE_BACKEND_SIMD_KERNELS_H_
#define AGT_CORE_BACKEND_SIMD_KERNELS_H_

#include <cstdint>

namespace agt::simd {

// One sample's factors of one weight row's per-sample gradient bounds under
// Rump's rule: the gradient of W(o, c) is [m +- r] * [mz[c] +- rz[c]].
struct RumpRow {
  double m = 0.0, r = 0.0;      // the output gradient's midpoint and radius
  const double* mz = nullptr;   // the input's midpoints
  const double* amz = nullptr;  // |mz| (rump_select clears mz's sign bit instead)
  const double* rz = nullptr;   // the input's radii; null: a point input
};

// The most sample rows one rump_select call takes, and the words of one
// row's winner bitmap.
inline constexpr int64_t kSelectRows = 16;
inline constexpr int64_t kSelectWords = 16;  // kFilterSpan / 64

// What rump_select reads and writes for `rows` samples of one weight row and
// n columns (n <= kFilterSpan; every pointer already at the span's first
// column).
struct RumpSelectArgs {
  // Per row: the bounds over the parameter box. Every row of a call is a
  // point row (rz null) or none is, and likewise for perturbed.
  const RumpRow* bound = nullptr;
  const RumpRow* perturbed = nullptr;  // poison only: the bounds that also cover the perturbation
  int64_t rows = 1;                    // 1 .. kSelectRows
  bool poison = false;
  bool clip = false;
  double gamma = 0.0;
  int64_t n = 0;
  bool negate_low = false, negate_high = false;  // the selections' stored signs
  double* bound_sum_low = nullptr;               // += lo, row after row
  double* bound_sum_high = nullptr;              // += hi
  // Poison only: += the clamped differences; both null: not summed (a
  // selection that keeps the extremes it sums never reads their total).
  double* value_sum_low = nullptr;
  double* value_sum_high = nullptr;
  // The selections' thresholds: rump_select compares every row with them as
  // they are at the call (so a row may be flagged that an earlier row's
  // insert has since outbid); rump_winner_values reads them as they are
  // then, and drops those.
  const double* thr_low = nullptr;
  const double* thr_high = nullptr;
  // The candidates as bitmaps, row i's at word i * kSelectWords: bit c % 64
  // of word c / 64 set when column c's stored value exceeds its threshold;
  // (n + 63) / 64 words per row, every one written.
  uint64_t* win_low = nullptr;
  uint64_t* win_high = nullptr;
};

struct Kernels {
  // Rump's rule for [m +- r] * [mz +- rz] (interval/rump.h, RumpScaleRow):
  // lo = m mz - rad, hi = m mz + rad with rad = r |mz| (rz null) or
  // (|m| rz + r |mz|) + r rz, for n values.
  void (*rump_scale_row)(double m, double r, const double* mz, const double* amz, const double* rz,
                         int64_t n, double* lo, double* hi);
  // rump_scale_row(m[o], r[o], mz, amz, rz, n, lo + o n, hi + o n) for
  // o = 0 .. rows-1: one sample's row of z against `rows` weight rows.
  void (*rump_scale_rows)(const double* m, const double* r, int64_t rows, const double* mz,
                          const double* amz, const double* rz, int64_t n, double* lo, double* hi);
  // out = m * z, for n values.
  void (*scale_row)(double m, const double* z, int64_t n, double* out);
  // v = min(max(v, -gamma), gamma) in std::max/std::min's order (a NaN stays).
  void (*clamp)(double* v, int64_t n, double gamma);
  // sum += x, for n values.
  void (*add_to)(const double* x, int64_t n, double* sum);
  // sum[i] += m[r * m_stride] * z[r * z_stride + i] for rows r = 0, 1, ...
  // in order and i in [0, n), each product first clamped to [-gamma, gamma]
  // (as clamp) when clip: the nominal gradients of one weight row folded
  // into their sum without being stored.
  void (*accumulate_scaled_rows)(const double* m, int64_t m_stride, const double* z,
                                 int64_t z_stride, int64_t rows, int64_t n, bool clip, double gamma,
                                 double* sum);
  // The selection's threshold filter: writes, in increasing order, every c in
  // [0, n) with s * v[c] > thr[c] (s = -1 when negate) to idx and returns how
  // many; sum (when non-null) += v in the same pass. n <= kFilterSpan; idx
  // has room for n + kFilterSlack values (slots past the count may be
  // written).
  int64_t (*filter_above)(const double* v, const double* thr, int64_t n, bool negate, double* sum,
                          int32_t* idx);
  // Theorem 9's one side of a row, filtered as by filter_above without
  // storing the differences: bound_sum += bound; diff = perturbed - bound
  // clamped at 0 (upper: std::max(d, 0.0), lower: std::min(d, 0.0));
  // value_sum += diff; the c with s * diff[c] > thr[c] written to idx (the
  // caller recomputes diff[c] for those). Same limits as filter_above.
  int64_t (*poison_filter)(const double* bound, const double* perturbed, int64_t n, bool upper,
                           bool negate, double* bound_sum, double* value_sum, const double* thr,
                           int32_t* idx);
  // Expansion, clipping, sums and the threshold filter of `rows` sample
  // rows fused, no bound ever stored: per row and column c, [lo, hi] =
  // Rump's product (bound), each clamped as by clamp when clip;
  // bound_sum_low += lo, bound_sum_high += hi, rows in order. Removal and
  // substitution filter v = lo and v = hi; poison also computes [plo, phi]
  // (perturbed, clamped alike) and filters Theorem 9's differences
  // v = min(plo - lo, 0) and max(phi - hi, 0) (poison_filter's rule), added
  // to value_sum_low/high. Each side's s * v > thr (s = -1 when negated) is a
  // candidate: its bit is set in that row's win_low / win_high. Every double
  // is the one that expanding (rump_scale_row), clamping and filtering
  // (filter_above / poison_filter) would give. The stored values are not
  // written: rump_winner_values recomputes the few that are needed.
  void (*rump_select)(const RumpSelectArgs& args);
  // Row `row`'s stored values s * v (as rump_select computes them) of the
  // columns idx[0 .. count) of one side (high: the upper one), kept only
  // where they exceed the side's threshold as it is now: those columns
  // stay in idx, in order, with val[c] = s * v (val by column; the slots
  // of the columns dropped may be written too); returns how many. Called
  // with a row's candidates after the rows before it were inserted, it
  // leaves exactly the winners that inserting row after row would see.
  int64_t (*rump_winner_values)(const RumpSelectArgs& args, int64_t row, bool high, int32_t* idx,
                                int64_t count, double* val);
  // The selection's sorted insert (StreamingExtremeSum, keep <= 32 values
  // per column held ascending): for w < count, column c = idx[w] (distinct
  // columns), slots c*keep .. c*keep + keep-1 drop their smallest and take
  // v = stored[c] (stored by column, as rump_winner_values writes them; v
  // exceeds the smallest) in order: new[j] = old[j+1] < v ? old[j+1]
  // : (old[j] < v ? v : old[j]), old[keep] read as +infinity; then
  // threshold[c] = new[0]. slots and threshold start at the span's first
  // column.
  void (*insert_sorted)(double* slots, int64_t keep, const int32_t* idx, const double* stored,
                        int64_t count, double* threshold);
  // C = A B, or C += A B when accumulate, all row-major: A is m x k (rows
  // lda apart), B k x n (ldb), C m x n (ldc). Each element is one running
  // sum in a fixed order: s = (accumulate ? C[i][j] : +0.0), then
  // s = s + A[i][p] * B[p][j] for p = 0, 1, ..., k - 1, every product and
  // sum rounded on its own. Eigen's GEMM blocks the sum in an order that
  // depends on its vector width and cache sizes; this one is the same in
  // every variant (the vectors run across j, one lane per element), but
  // for which NaN a NaN sum carries (x86 returns one operand's NaN, and the
  // compiler may swap an add's operands). C must not overlap A or B.
  void (*gemm)(int64_t m, int64_t n, int64_t k, const double* a, int64_t lda, const double* b,
               int64_t ldb, double* c, int64_t ldc, bool accumulate);
  // Midpoints and radii of n intervals [l, u]: m = (u + l) * 0.5,
  // r = (u - l) * 0.5 (not stored when r is null) and, when a is not null,
  // a = |m| (the sign bit cleared); *r_min and *r_max the smallest and largest r as running
  // std::min from +infinity and std::max from 0 would give them (NaNs enter
  // neither; a zero minimum may carry either sign), *r_nan whether an r is a
  // NaN. m and r may be l and u themselves, and overlap nothing else.
  void (*mid_rad)(const double* l, const double* u, int64_t n, double* m, double* r, double* a,
                  double* r_min, double* r_max, bool* r_nan);
  // mid_rad's range of the radii alone (nothing stored).
  void (*radius_range)(const double* l, const double* u, int64_t n, double* r_min, double* r_max,
                       bool* r_nan);
};

// The most values filter_above takes at once (the caller's index buffer).
inline constexpr int64_t kFilterSpan = 1024;
inline constexpr int64_t kFilterSlack = 8;
static_assert(kSelectWords * 64 == kFilterSpan);

// The tables, one per variant (defined by the kernels_*.cc units; the AVX
// ones exist on x86-64 only).
extern const Kernels kKernelsBaseline;
extern const Kernels kKernelsAvx2;
extern const Kernels kKernelsAvx512;

}  // namespace agt::simd

#endif  // AGT_CORE_BACKEND_SIMD_KERNELS_H_
