// The per-element arithmetic of phase 2 of a certified step (backend.h,
// Aggregate) for one parameter, as __host__ __device__ functions: the same
// code runs in the CUDA kernels (cuda_engine.cu) and in the host engine
// (host_engine.cc), so CI, which has no GPU, tests what the GPU runs.
//
// Every function repeats, operation for operation, the CPU backend's rule for
// one value (core/backend/simd/kernels_impl.inc: Rump1, Clamp1, Select1;
// core/aggregate/aggregate.cc: StreamingExtremeSum, Aggregator::Finish), so a
// parameter that sees the same rows in the same order gets the same doubles.
// Units that include this header are compiled without multiply-add
// contraction (-ffp-contract=off on the host, -fmad=false for nvcc).
//
// The selection (paper section 6.4, SEMax / SEMin) per parameter and side:
// `keep` slots held ascending (slot j of parameter p at slots[j * stride + p],
// so that neighbouring GPU threads touch neighbouring addresses) with the
// threshold slots[0]; a value enters when its stored form (negated when the
// side keeps smallest values) exceeds the threshold. The kept multiset is the
// `keep` largest stored values whatever the order of equal values, and the
// sum runs over it ascending from +0.0, as StreamingExtremeSum::Result does
// after its sort: the same double (values that compare equal are equal, or
// are zeros of either sign, which add alike to a sum started at +0.0).
#ifndef AGT_CORE_CUDA_SELECT_MATH_H_
#define AGT_CORE_CUDA_SELECT_MATH_H_

#include <cstdint>

#if defined(__CUDACC__)
#define AGT_HD __host__ __device__ __forceinline__
#else
#define AGT_HD inline
#endif

namespace agt::cuda {

// Which aggregation a stream runs (aggregate.h, AggregationKind).
enum class StreamKind : int32_t { kRemoval = 0, kSubstitution = 1, kBoundedPoisoning = 2 };

// One side of one stream's selection for the current batch.
struct SideShape {
  int32_t keep = 0;       // kept values per parameter: min(m, rows - m)
  bool opposite = false;  // true: keeps rows - m of the other side (subtracted from the total)
  bool negate = false;    // stored value = -value
};

// The two sides of a stream (lower: SEMin_m, upper: SEMax_m) for a batch of
// `rows` rows and budget k (aggregate.cc, StreamingExtremeSum and Aggregator).
struct StreamShape {
  StreamKind kind = StreamKind::kRemoval;
  int32_t rows = 0;
  int32_t k = 0;
  double gamma = 0.0;  // substitution's clipping bound
  SideShape low, high;
};

AGT_HD StreamShape MakeStreamShape(StreamKind kind, int32_t rows, int32_t k, double gamma) {
  StreamShape s;
  s.kind = kind;
  s.rows = rows;
  s.k = k;
  s.gamma = gamma;
  const int32_t m = kind == StreamKind::kBoundedPoisoning ? k : rows - k;
  const bool opposite = m > rows - m;
  const int32_t keep = opposite ? rows - m : m;
  // Stored values are multiplied by a sign so that a side always keeps its
  // largest stored values: the lower side wants the smallest values, unless
  // it keeps the other side.
  s.low = SideShape{keep, opposite, !opposite};
  s.high = SideShape{keep, opposite, opposite};
  return s;
}

// Rump's product [m +- r] * [mz +- rz] for one column (rz ignored when point):
// RumpScaleRow's order.
AGT_HD void RumpBound(double m, double r, double mz, double amz, double rz, bool point, double* lo,
                      double* hi) {
  const double am = m < 0.0 ? -m : m;
  const double center = m * mz;
  const double rad = point ? r * amz : (am * rz + r * amz) + r * rz;
  *lo = center - rad;
  *hi = center + rad;
}

// min(max(v, -gamma), gamma) in std::max / std::min's order (a NaN stays).
AGT_HD double ClampToGamma(double v, double gamma) {
  const double a = v < -gamma ? -gamma : v;
  return gamma < a ? gamma : a;
}

// Theorem 9's clamped differences: std::min(plo - lo, 0.0), std::max(phi - hi, 0.0).
AGT_HD double LowerDifference(double plo, double lo) {
  const double d = plo - lo;
  return 0.0 < d ? 0.0 : d;
}
AGT_HD double UpperDifference(double phi, double hi) {
  const double d = phi - hi;
  return d < 0.0 ? 0.0 : d;
}

// Offers `value` to one side of one parameter: its slots (stride apart) and
// the threshold held by the caller (slots[0], or +infinity when keep is 0).
// The sorted insert of kernels_impl.inc (InsertSorted1): slot j takes
// old[j+1] < v ? old[j+1] : max(old[j], v), old[keep] read as +infinity.
AGT_HD void OfferValue(double value, const SideShape& side, double* slots, int64_t stride,
                       double* threshold) {
  const double v = side.negate ? -value : value;
  if (!(v > *threshold)) return;
  const int32_t last = side.keep - 1;
  for (int32_t j = 0; j < last; ++j) {
    const double next = slots[(j + 1) * stride];
    const double here = slots[j * stride] < v ? v : slots[j * stride];
    slots[j * stride] = next < v ? next : here;
  }
  const double top = slots[last * stride];
  slots[last * stride] = top < v ? v : top;
  *threshold = slots[0];
}

// The threshold a side starts a batch with: every value enters while slots
// are -infinity; with nothing kept nothing ever enters.
AGT_HD double InitialThreshold(const SideShape& side) {
  return side.keep > 0 ? -__builtin_huge_val() : __builtin_huge_val();
}

// The side's extreme sum (StreamingExtremeSum::Result): the kept values
// summed ascending, the sign undone, and for the opposite side subtracted
// from `total` (the plain sum of every value the side was offered).
AGT_HD double SideResult(const SideShape& side, const double* slots, int64_t stride, double total) {
  double kept = 0.0;
  for (int32_t j = 0; j < side.keep; ++j) kept += slots[j * stride];
  kept *= side.negate ? -1.0 : 1.0;
  return side.opposite ? total - kept : kept;
}

// Aggregator::Finish for one parameter: the descent direction's bounds from
// the two sides' extreme sums and the plain sums of the bounds (Theorems 6,
// 8, 9).
AGT_HD void FinishParameter(const StreamShape& s, double low, double high, double bound_sum_lower,
                            double bound_sum_upper, double* lower, double* upper) {
  const double b = s.rows;
  switch (s.kind) {
    case StreamKind::kRemoval:  // Theorem 6
      *lower = low / (b - s.k);
      *upper = high / (b - s.k);
      return;
    case StreamKind::kSubstitution:  // Theorem 8
      *lower = (low - s.k * s.gamma) / b;
      *upper = (high + s.k * s.gamma) / b;
      return;
    case StreamKind::kBoundedPoisoning:  // Theorem 9
      *lower = (bound_sum_lower + low) / b;
      *upper = (bound_sum_upper + high) / b;
      return;
  }
}

// One parameter's running state in one stream: pointers at the parameter's
// first slot and its sums (the engines lay them out; stride as above).
struct ParameterState {
  double* slots_low;
  double* slots_high;
  int64_t stride;
  double* bound_sum_low;   // sum of the per-sample lower bounds
  double* bound_sum_high;  // ... upper bounds
  double* value_sum_low;   // poisoning: sum of the clamped differences
  double* value_sum_high;
  double thr_low, thr_high;  // held in registers while rows are offered
};

// One sample's bounds [lo, hi] of the parameter (already clipped) and, for
// poisoning, its perturbed bounds [plo, phi] (clipped): the sums and both
// selections, in Aggregator::AddBlock / AddRumpRows' order.
AGT_HD void OfferRow(const StreamShape& s, double lo, double hi, double plo, double phi,
                     ParameterState* p) {
  *p->bound_sum_low += lo;
  *p->bound_sum_high += hi;
  if (s.kind != StreamKind::kBoundedPoisoning) {
    OfferValue(lo, s.low, p->slots_low, p->stride, &p->thr_low);
    OfferValue(hi, s.high, p->slots_high, p->stride, &p->thr_high);
    return;
  }
  const double vlo = LowerDifference(plo, lo), vhi = UpperDifference(phi, hi);
  *p->value_sum_low += vlo;
  *p->value_sum_high += vhi;
  OfferValue(vlo, s.low, p->slots_low, p->stride, &p->thr_low);
  OfferValue(vhi, s.high, p->slots_high, p->stride, &p->thr_high);
}

// The factors of one sample's gradient of one dense weight W(o, i) under
// Rump's rule (simd::RumpRow, one column): [m +- r] * [mz +- rz].
struct RumpElement {
  double m, r, mz, amz, rz;
  bool point;  // rz is zero (not read)
};

// The clipped bounds of one Rump element.
AGT_HD void RumpElementBounds(const RumpElement& e, bool clip, double gamma, double* lo,
                              double* hi) {
  RumpBound(e.m, e.r, e.mz, e.amz, e.rz, e.point, lo, hi);
  if (clip) {
    *lo = ClampToGamma(*lo, gamma);
    *hi = ClampToGamma(*hi, gamma);
  }
}

// The nominal gradient's addend m * z, clipped (accumulate_scaled_rows).
AGT_HD double NominalAddend(double m, double z, bool clip, double gamma) {
  const double g = m * z;
  return clip ? ClampToGamma(g, gamma) : g;
}

}  // namespace agt::cuda

#endif  // AGT_CORE_CUDA_SELECT_MATH_H_
