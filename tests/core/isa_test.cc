// Tests of the run-time kernel choice (core/backend/simd/isa.h): every
// variant the CPU supports computes the same doubles as the baseline, kernel
// by kernel on awkward inputs (odd lengths, signed zeros, infinities, NaN,
// ties with the threshold) and on whole training runs compared bit for bit;
// the AGT_ISA override is honoured (CI runs the suite under each variant).
#include "core/backend/simd/isa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/common/rng.h"
#include "core/data/dataset.h"
#include "core/interval/rump.h"
#include "core/train/train.h"

namespace agt {
namespace {

using simd::Isa;
using simd::Kernels;

// Restores the variant chosen at start-up when a test ends.
class IsaTest : public ::testing::Test {
 protected:
  void TearDown() override { ASSERT_TRUE(simd::SetIsaForTesting(start_).ok()); }
  const Isa start_ = simd::ActiveIsa();
};

// Bitwise equality (so NaN == NaN and -0 != +0).
bool SameBits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

const Kernels& TableOf(Isa isa) {
  EXPECT_TRUE(simd::SetIsaForTesting(isa).ok());
  return simd::ActiveKernels();
}

// Random values with the awkward ones mixed in.
std::vector<double> Awkward(int n, uint64_t seed, bool specials) {
  Rng rng(seed);
  std::vector<double> v(n);
  const double inf = std::numeric_limits<double>::infinity();
  const double pool[] = {0.0, -0.0, inf, -inf, std::nan(""), 1e-310, -1e300, 0.1};
  for (int i = 0; i < n; ++i) {
    v[i] = rng.Uniform(-2.0, 2.0) * std::pow(10.0, rng.UniformInt(9) - 4.0);
    if (specials && rng.UniformInt(7) == 0) v[i] = pool[rng.UniformInt(8)];
  }
  return v;
}

void ExpectSameBits(const std::vector<double>& a, const std::vector<double>& b, const char* what,
                    Isa isa, int n) {
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(SameBits(a[i], b[i])) << what << " [" << simd::IsaName(isa) << "] n=" << n
                                      << " element " << i << ": " << a[i] << " vs " << b[i];
  }
}

// The same, but any NaN equals any NaN: for sums over several rows, where
// two NaN operands meet and which one's sign survives depends on the operand
// order the compiler picked for a scalar add (a finite sum has one answer).
void ExpectSameBitsOrBothNaN(const std::vector<double>& a, const std::vector<double>& b,
                             const char* what, Isa isa, int n) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    ASSERT_TRUE(SameBits(a[i], b[i])) << what << " [" << simd::IsaName(isa) << "] n=" << n
                                      << " element " << i << ": " << a[i] << " vs " << b[i];
  }
}

TEST_F(IsaTest, NamesRoundTripAndUnknownNamesAreRejected) {
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    EXPECT_EQ(simd::ParseIsa(simd::IsaName(isa)), isa);
  }
  EXPECT_FALSE(simd::ParseIsa("sse4").has_value());
  EXPECT_FALSE(simd::ParseIsa("").has_value());
  EXPECT_TRUE(simd::IsaSupported(Isa::kBaseline));
  EXPECT_EQ(simd::SupportedIsas().front(), Isa::kBaseline);
  EXPECT_EQ(simd::BestIsa(), simd::SupportedIsas().back());
}

TEST_F(IsaTest, TheRequestedVariantIsTheOneInUse) {
  // CI forces each variant with AGT_ISA: a request that silently fell back
  // would test the wrong kernels.
  EXPECT_TRUE(simd::RequestedIsaHonoured());
  const char* env = std::getenv("AGT_ISA");
  if (env != nullptr && *env != '\0') {
    EXPECT_EQ(simd::IsaName(start_), env);
  } else {
    EXPECT_EQ(start_, simd::BestIsa());
  }
}

TEST_F(IsaTest, UnsupportedVariantsAreRefused) {
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (simd::IsaSupported(isa)) continue;
    const absl::Status s = simd::SetIsaForTesting(isa);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(std::string(s.message()).find(std::string(simd::IsaName(isa))), std::string::npos)
        << s;
  }
}

TEST_F(IsaTest, ElementwiseKernelsMatchTheScalarRuleBitForBitOnEveryVariant) {
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& k = TableOf(isa);
    for (int n : {0, 1, 3, 7, 8, 9, 17, 64, 131}) {
      const std::vector<double> mz = Awkward(n, 1 + n, true), rz = Awkward(n, 2 + n, false);
      std::vector<double> amz(n), rpos(n);
      for (int i = 0; i < n; ++i) {
        amz[i] = std::abs(mz[i]);
        rpos[i] = std::abs(rz[i]);
      }
      for (double m : {0.75, -3.25, -0.0}) {
        const double r = 0.125, am = std::abs(m);
        std::vector<double> lo(n), hi(n), want_lo(n), want_hi(n);
        k.rump_scale_row(m, r, mz.data(), amz.data(), rpos.data(), n, lo.data(), hi.data());
        for (int i = 0; i < n; ++i) {
          const double c = m * mz[i];
          const double rad = (am * rpos[i] + r * amz[i]) + r * rpos[i];
          want_lo[i] = c - rad;
          want_hi[i] = c + rad;
        }
        ExpectSameBits(lo, want_lo, "rump lower", isa, n);
        ExpectSameBits(hi, want_hi, "rump upper", isa, n);
        k.rump_scale_row(m, r, mz.data(), amz.data(), nullptr, n, lo.data(), hi.data());
        for (int i = 0; i < n; ++i) {
          want_lo[i] = m * mz[i] - r * amz[i];
          want_hi[i] = m * mz[i] + r * amz[i];
        }
        ExpectSameBits(lo, want_lo, "rump point lower", isa, n);
        ExpectSameBits(hi, want_hi, "rump point upper", isa, n);
        // Several weight rows at once: each row is rump_scale_row's.
        for (const double* rzp :
             {static_cast<const double*>(rpos.data()), static_cast<const double*>(nullptr)}) {
          const std::vector<double> ms = {m, -1.5, 0.0, 2.0e-300, 7.0};
          const std::vector<double> rs = {r, 0.0, 0.25, 1.0e-300, 3.0};
          const int rows = static_cast<int>(ms.size());
          std::vector<double> lo_rows(rows * n), hi_rows(rows * n);
          k.rump_scale_rows(ms.data(), rs.data(), rows, mz.data(), amz.data(), rzp, n,
                            lo_rows.data(), hi_rows.data());
          for (int o = 0; o < rows; ++o) {
            k.rump_scale_row(ms[o], rs[o], mz.data(), amz.data(), rzp, n, lo.data(), hi.data());
            ExpectSameBits(
                std::vector<double>(lo_rows.begin() + o * n, lo_rows.begin() + (o + 1) * n), lo,
                "rump rows lower", isa, n);
            ExpectSameBits(
                std::vector<double>(hi_rows.begin() + o * n, hi_rows.begin() + (o + 1) * n), hi,
                "rump rows upper", isa, n);
          }
        }
        k.scale_row(m, mz.data(), n, lo.data());
        for (int i = 0; i < n; ++i) want_lo[i] = m * mz[i];
        ExpectSameBits(lo, want_lo, "scale", isa, n);
      }
      std::vector<double> v = mz, want = mz;
      k.clamp(v.data(), n, 0.5);
      for (double& x : want) x = std::min(std::max(x, -0.5), 0.5);
      ExpectSameBits(v, want, "clamp", isa, n);
      std::vector<double> sum = rz, want_sum = rz;
      k.add_to(mz.data(), n, sum.data());
      for (int i = 0; i < n; ++i) want_sum[i] += mz[i];
      ExpectSameBits(sum, want_sum, "add_to", isa, n);
    }
  }
}

TEST_F(IsaTest, MidpointsRadiiAndTheirRangeMatchTheScalarRuleOnEveryVariant) {
  // mid_rad, and radius_range (the same range, nothing stored).
  const double inf = std::numeric_limits<double>::infinity();
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& k = TableOf(isa);
    for (int n : {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 64, 131}) {
      for (int variant = 0; variant < 4; ++variant) {
        // 0: awkward values (NaNs, infinities, both zeros, l > u);
        // 1: ordinary intervals; 2: points but one NaN at the end;
        // 3: ordinary intervals with one negative radius in the last lane.
        std::vector<double> l = Awkward(n, 10 + n, variant == 0), u(n);
        const std::vector<double> w = Awkward(n, 20 + n, false);
        for (int i = 0; i < n; ++i) {
          u[i] = variant == 0 ? Awkward(1, 30 + 7 * n + i, true)[0] : l[i] + std::abs(w[i]);
          if (variant == 2) u[i] = l[i];
        }
        if (n > 0 && variant == 2) l[n - 1] = std::nan("");
        if (n > 0 && variant == 3) u[n - 1] = l[n - 1] - 1.0;
        std::vector<double> want_m(n), want_r(n), want_a(n);
        double want_lo = inf, want_hi = 0.0;
        bool want_nan = false;
        for (int i = 0; i < n; ++i) {
          want_m[i] = (u[i] + l[i]) * 0.5;
          want_r[i] = (u[i] - l[i]) * 0.5;
          want_a[i] = std::abs(want_m[i]);
          want_lo = std::min(want_lo, want_r[i]);
          want_hi = std::max(want_hi, want_r[i]);
          want_nan = want_nan || std::isnan(want_r[i]);
        }
        std::vector<double> m(n), r(n), a(n);
        double lo = -1.0, hi = -1.0;
        bool nan = !want_nan;
        k.mid_rad(l.data(), u.data(), n, m.data(), r.data(), a.data(), &lo, &hi, &nan);
        ExpectSameBitsOrBothNaN(m, want_m, "mid_rad m", isa, n);
        ExpectSameBitsOrBothNaN(r, want_r, "mid_rad r", isa, n);
        ExpectSameBitsOrBothNaN(a, want_a, "mid_rad |m|", isa, n);
        // A zero minimum may carry either sign; the maximum starts at +0.
        EXPECT_EQ(lo, want_lo) << simd::IsaName(isa) << " n=" << n << " variant " << variant;
        EXPECT_TRUE(SameBits(hi, want_hi)) << simd::IsaName(isa) << " n=" << n;
        EXPECT_EQ(nan, want_nan) << simd::IsaName(isa) << " n=" << n << " variant " << variant;
        // In place: midpoints over l, radii over u, no |m|.
        std::vector<double> l2 = l, u2 = u;
        double lo2 = -1.0, hi2 = -1.0;
        bool nan2 = !want_nan;
        k.mid_rad(l2.data(), u2.data(), n, l2.data(), u2.data(), nullptr, &lo2, &hi2, &nan2);
        ExpectSameBitsOrBothNaN(l2, want_m, "mid_rad in place m", isa, n);
        ExpectSameBitsOrBothNaN(u2, want_r, "mid_rad in place r", isa, n);
        EXPECT_EQ(lo2, want_lo);
        EXPECT_TRUE(SameBits(hi2, want_hi));
        EXPECT_EQ(nan2, want_nan);
        // The range alone, nothing stored.
        double lo3 = -1.0, hi3 = -1.0;
        bool nan3 = !want_nan;
        k.radius_range(l.data(), u.data(), n, &lo3, &hi3, &nan3);
        EXPECT_EQ(lo3, want_lo) << simd::IsaName(isa) << " n=" << n << " variant " << variant;
        EXPECT_TRUE(SameBits(hi3, want_hi)) << simd::IsaName(isa) << " n=" << n;
        EXPECT_EQ(nan3, want_nan) << simd::IsaName(isa) << " n=" << n << " variant " << variant;
      }
    }
  }
}

TEST_F(IsaTest, AccumulatedRowsEqualTheRowByRowSumBitForBitOnEveryVariant) {
  const int rows = 13, stride = 600;
  const std::vector<double> m = Awkward(rows * 3, 31, false), z = Awkward(rows * stride, 32, true);
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& k = TableOf(isa);
    for (int n : {0, 1, 7, 255, 256, 257, 513, 600}) {
      for (bool clip : {false, true}) {
        std::vector<double> sum = Awkward(n, 33, false), want = sum;
        k.accumulate_scaled_rows(m.data(), 3, z.data(), stride, rows, n, clip, 0.3, sum.data());
        for (int r = 0; r < rows; ++r) {
          for (int i = 0; i < n; ++i) {
            double g = m[r * 3] * z[r * stride + i];
            if (clip) g = std::min(std::max(g, -0.3), 0.3);
            want[i] += g;
          }
        }
        ExpectSameBits(sum, want, clip ? "accumulate clipped" : "accumulate", isa, n);
      }
    }
  }
}

TEST_F(IsaTest, TheFilterFindsExactlyTheValuesAboveTheirThresholdOnEveryVariant) {
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& k = TableOf(isa);
    for (int n : {0, 1, 2, 5, 8, 15, 16, 33, 1000, static_cast<int>(simd::kFilterSpan)}) {
      std::vector<double> v = Awkward(n, 10 + n, true), thr = Awkward(n, 20 + n, true);
      // Ties with the threshold (never "above") and signed zeros.
      for (int i = 0; i < n; i += 5) thr[i] = v[i];
      for (int i = 3; i < n; i += 11) {
        v[i] = -0.0;
        thr[i] = 0.0;
      }
      for (bool negate : {false, true}) {
        std::vector<int32_t> idx(n + simd::kFilterSlack);
        std::vector<double> sum(n, 1.0), want_sum(n, 1.0);
        const int64_t count =
            k.filter_above(v.data(), thr.data(), n, negate, sum.data(), idx.data());
        std::vector<int32_t> want;
        for (int i = 0; i < n; ++i) {
          want_sum[i] += v[i];
          if ((negate ? -v[i] : v[i]) > thr[i]) want.push_back(i);
        }
        ASSERT_EQ(count, static_cast<int64_t>(want.size())) << simd::IsaName(isa) << " n=" << n;
        EXPECT_EQ(std::vector<int32_t>(idx.begin(), idx.begin() + count), want)
            << simd::IsaName(isa) << " n=" << n << " negate=" << negate;
        ExpectSameBits(sum, want_sum, "filter sum", isa, n);
        EXPECT_EQ(k.filter_above(v.data(), thr.data(), n, negate, nullptr, idx.data()), count);
      }
    }
  }
}

TEST_F(IsaTest, TheFusedDifferenceFilterEqualsDifferencesThenFilterOnEveryVariant) {
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& k = TableOf(isa);
    for (int n : {0, 1, 3, 8, 13, 64, 1000}) {
      const std::vector<double> bound = Awkward(n, 40 + n, true);
      std::vector<double> perturbed = Awkward(n, 50 + n, true), thr = Awkward(n, 60 + n, false);
      for (int i = 0; i < n; i += 4) perturbed[i] = bound[i];  // differences of exactly 0
      for (int i = 0; i < n; i += 9) thr[i] = 0.0;
      for (bool upper : {false, true}) {
        for (bool negate : {false, true}) {
          std::vector<double> bsum(n, 0.5), vsum(n, -0.25), want_bsum = bsum, want_vsum = vsum;
          std::vector<int32_t> idx(n + simd::kFilterSlack);
          const int64_t count = k.poison_filter(bound.data(), perturbed.data(), n, upper, negate,
                                                bsum.data(), vsum.data(), thr.data(), idx.data());
          std::vector<int32_t> want;
          for (int i = 0; i < n; ++i) {
            want_bsum[i] += bound[i];
            const double d = perturbed[i] - bound[i];
            const double v = upper ? std::max(d, 0.0) : std::min(d, 0.0);
            want_vsum[i] += v;
            if ((negate ? -v : v) > thr[i]) want.push_back(i);
          }
          ASSERT_EQ(count, static_cast<int64_t>(want.size())) << simd::IsaName(isa) << " n=" << n;
          EXPECT_EQ(std::vector<int32_t>(idx.begin(), idx.begin() + count), want)
              << simd::IsaName(isa) << " n=" << n << " upper=" << upper << " negate=" << negate;
          ExpectSameBits(bsum, want_bsum, "fused bound sum", isa, n);
          ExpectSameBits(vsum, want_vsum, "fused value sum", isa, n);
        }
      }
    }
  }
}

// The fused kernel against its definition written out in scalar code:
// Rump's product, the clamp, the sums (rows in order) and the filter of each
// side, for calls of 1, 3 and kSelectRows rows with different factors per
// row; then rump_winner_values on each row's candidates, with the thresholds
// as at the call (every candidate kept) and raised (ties and +infinity
// among them: those candidates dropped).
TEST_F(IsaTest, TheFusedRumpSelectEqualsExpandClampAndFilterOnEveryVariant) {
  const double gamma = 0.5;
  const double inf = std::numeric_limits<double>::infinity();
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& k = TableOf(isa);
    for (int n : {0, 1, 3, 8, 13, 64, 1000, static_cast<int>(simd::kFilterSpan)}) {
      for (int rows : {1, 3, static_cast<int>(simd::kSelectRows)}) {
        // Row i's inputs and factors.
        std::vector<std::vector<double>> mz(rows), amz(rows), rz(rows), pmz(rows), pamz(rows),
            prz(rows);
        for (int i = 0; i < rows; ++i) {
          const uint64_t seed = 70 + n + 1000 * static_cast<uint64_t>(i);
          mz[i] = Awkward(n, seed, true);
          pmz[i] = Awkward(n, seed + 1, true);
          rz[i] = Awkward(n, seed + 2, false);
          prz[i] = Awkward(n, seed + 3, false);
          amz[i].resize(n);
          pamz[i].resize(n);
          for (int c = 0; c < n; ++c) {
            amz[i][c] = std::abs(mz[i][c]);
            pamz[i][c] = std::abs(pmz[i][c]);
            rz[i][c] = std::abs(rz[i][c]);
            prz[i][c] = std::abs(prz[i][c]);
          }
        }
        const std::vector<double> thr_low0 = Awkward(n, 74 + n, true),
                                  thr_high0 = Awkward(n, 75 + n, true);
        for (int variant = 0; variant < 64; ++variant) {
          const bool poison = variant & 1, clip = variant & 2, point = variant & 4,
                     negate_low = variant & 8, negate_high = variant & 16;
          // Poison without the difference sums (null pointers): everything
          // else the same.
          const bool value_sums = !(variant & 32);
          if (!poison && !value_sums) continue;
          simd::RumpRow bound[simd::kSelectRows], perturbed[simd::kSelectRows];
          for (int i = 0; i < rows; ++i) {
            bound[i] = {-0.75 + 0.1 * i, 0.125 * (1 + i % 3), mz[i].data(), amz[i].data(),
                        point ? nullptr : rz[i].data()};
            perturbed[i] = {0.5 - 0.05 * i, 0.25, pmz[i].data(), pamz[i].data(), prz[i].data()};
          }
          std::vector<double> thr_low = thr_low0, thr_high = thr_high0;
          simd::RumpSelectArgs a;
          a.bound = bound;
          a.perturbed = perturbed;
          a.rows = rows;
          a.poison = poison;
          a.clip = clip;
          a.gamma = gamma;
          a.n = n;
          a.negate_low = negate_low;
          a.negate_high = negate_high;
          std::vector<double> bsl(n, 0.5), bsh(n, -0.5), vsl(n, 0.25), vsh(n, -0.25);
          std::vector<double> want_bsl = bsl, want_bsh = bsh, want_vsl = vsl, want_vsh = vsh;
          a.bound_sum_low = bsl.data();
          a.bound_sum_high = bsh.data();
          a.value_sum_low = value_sums ? vsl.data() : nullptr;
          a.value_sum_high = value_sums ? vsh.data() : nullptr;
          a.thr_low = thr_low.data();
          a.thr_high = thr_high.data();
          // Every word a row uses is written: start them with every bit set.
          const size_t words = static_cast<size_t>((n + 63) / 64);
          std::vector<uint64_t> wl(simd::kSelectRows * simd::kSelectWords, ~uint64_t{0}), wh = wl;
          a.win_low = wl.data();
          a.win_high = wh.data();
          k.rump_select(a);

          const auto rump = [&](const simd::RumpRow& f, int c, double* lo, double* hi) {
            const double center = f.m * f.mz[c];
            const double rad = f.rz == nullptr
                                   ? f.r * f.amz[c]
                                   : (std::abs(f.m) * f.rz[c] + f.r * f.amz[c]) + f.r * f.rz[c];
            *lo = center - rad;
            *hi = center + rad;
            if (clip) {
              *lo = std::min(std::max(*lo, -gamma), gamma);
              *hi = std::min(std::max(*hi, -gamma), gamma);
            }
          };
          for (int i = 0; i < rows; ++i) {
            const std::string what = std::string(simd::IsaName(isa)) + " n=" + std::to_string(n) +
                                     " rows=" + std::to_string(rows) + " row=" + std::to_string(i) +
                                     " variant=" + std::to_string(variant);
            const uint64_t* row_wl = wl.data() + i * simd::kSelectWords;
            const uint64_t* row_wh = wh.data() + i * simd::kSelectWords;
            // No bit past column n may be set (the decoder would read it).
            for (size_t w = 0; w < words; ++w) {
              const int64_t bits_used = std::min<int64_t>(64, n - static_cast<int64_t>(w) * 64);
              const uint64_t unused = bits_used == 64 ? 0 : ~uint64_t{0} << bits_used;
              EXPECT_EQ(row_wl[w] & unused, 0u) << what << " word " << w;
              EXPECT_EQ(row_wh[w] & unused, 0u) << what << " word " << w;
            }
            std::vector<int32_t> want_il, want_ih;
            std::vector<double> want_vl(n), want_vh(n);  // every column's stored value
            for (int c = 0; c < n; ++c) {
              double lo, hi;
              rump(bound[i], c, &lo, &hi);
              want_bsl[c] += lo;
              want_bsh[c] += hi;
              double v_low = lo, v_high = hi;
              if (poison) {
                double plo, phi;
                rump(perturbed[i], c, &plo, &phi);
                v_low = std::min(plo - lo, 0.0);
                v_high = std::max(phi - hi, 0.0);
                if (value_sums) {
                  want_vsl[c] += v_low;
                  want_vsh[c] += v_high;
                }
              }
              want_vl[c] = negate_low ? -v_low : v_low;
              want_vh[c] = negate_high ? -v_high : v_high;
              if (want_vl[c] > thr_low0[c]) want_il.push_back(c);
              if (want_vh[c] > thr_high0[c]) want_ih.push_back(c);
            }
            for (const bool high : {false, true}) {
              const std::vector<int32_t>& want = high ? want_ih : want_il;
              const std::vector<double>& want_val = high ? want_vh : want_vl;
              std::vector<double>& thr = high ? thr_high : thr_low;
              std::vector<int32_t> idx(n + 1);
              const int64_t count = simd::WinnerColumns(high ? row_wh : row_wl, n, idx.data());
              ASSERT_EQ(count, static_cast<int64_t>(want.size())) << what << " high=" << high;
              ASSERT_EQ(std::vector<int32_t>(idx.begin(), idx.begin() + count), want)
                  << what << " high=" << high;
              // Thresholds as at the call: every candidate kept, its value
              // the definition's.
              std::vector<double> val(n, std::nan(""));
              std::vector<int32_t> kept_idx = idx;
              ASSERT_EQ(k.rump_winner_values(a, i, high, kept_idx.data(), count, val.data()), count)
                  << what << " high=" << high;
              EXPECT_EQ(kept_idx, idx) << what << " high=" << high;
              for (int64_t w = 0; w < count; ++w) {
                const int32_t c = idx[w];
                ASSERT_TRUE(SameBits(val[c], want_val[c]))
                    << what << " high=" << high << " column " << c << ": " << val[c] << " vs "
                    << want_val[c];
              }
              // Raised thresholds (a tie, +infinity, a value just below):
              // only the candidates still above them are left, in order.
              for (int64_t w = 0; w < count; ++w) {
                const int32_t c = idx[w];
                switch (w % 4) {
                  case 0:
                    thr[c] = want_val[c];
                    break;
                  case 1:
                    thr[c] = inf;
                    break;
                  case 2:
                    thr[c] = std::nextafter(want_val[c], -inf);
                    break;
                  default:
                    break;  // unchanged
                }
              }
              std::vector<int32_t> want_kept;
              for (int64_t w = 0; w < count; ++w) {
                if (want_val[idx[w]] > thr[idx[w]]) want_kept.push_back(idx[w]);
              }
              std::vector<double> val2(n, std::nan(""));
              const int64_t kept =
                  k.rump_winner_values(a, i, high, kept_idx.data(), count, val2.data());
              ASSERT_EQ(kept, static_cast<int64_t>(want_kept.size())) << what << " high=" << high;
              EXPECT_EQ(std::vector<int32_t>(kept_idx.begin(), kept_idx.begin() + kept), want_kept)
                  << what << " high=" << high;
              for (int32_t c : want_kept) {
                ASSERT_TRUE(SameBits(val2[c], want_val[c])) << what << " column " << c;
              }
              // Back as at the call for the next row (the same buffer: a.thr_*).
              const std::vector<double>& at_call = high ? thr_high0 : thr_low0;
              std::copy(at_call.begin(), at_call.end(), thr.begin());
            }
          }
          const auto same = rows == 1 ? ExpectSameBits : ExpectSameBitsOrBothNaN;
          same(bsl, want_bsl, "fused low bound sum", isa, n);
          same(bsh, want_bsh, "fused high bound sum", isa, n);
          same(vsl, want_vsl, "fused low value sum", isa, n);
          same(vsh, want_vsh, "fused high value sum", isa, n);
        }
      }
    }
  }
}

// The bitmap decode against a test of every bit: densities from none to
// all, widths that end inside a word, and no write past the count.
TEST(WinnerColumns, ListsEverySetBitInOrder) {
  for (int n : {0, 1, 15, 16, 17, 63, 64, 65, 200, 784, static_cast<int>(simd::kFilterSpan)}) {
    for (int density : {0, 1, 5, 50, 100}) {  // percent of the columns set
      Rng rng(900 + n * 7 + density);
      std::vector<uint64_t> bits(simd::kSelectWords, 0);
      std::vector<int32_t> want;
      for (int c = 0; c < n; ++c) {
        if (static_cast<int>(rng.UniformInt(100)) < density) {
          bits[c / 64] |= uint64_t{1} << (c % 64);
          want.push_back(c);
        }
      }
      const int32_t guard = -7;
      std::vector<int32_t> idx(n + 4, guard);
      const int64_t count = simd::WinnerColumns(bits.data(), n, idx.data());
      const std::string what = "n=" + std::to_string(n) + " density=" + std::to_string(density);
      ASSERT_EQ(count, static_cast<int64_t>(want.size())) << what;
      EXPECT_EQ(std::vector<int32_t>(idx.begin(), idx.begin() + count), want) << what;
      for (size_t i = static_cast<size_t>(count); i < idx.size(); ++i) {
        EXPECT_EQ(idx[i], guard) << what << " slot " << i;
      }
    }
  }
}

// The vector insert against the scalar rule, for every kept count up to
// 32 (chunk edges of every variant), ties with kept values, infinities.
TEST_F(IsaTest, TheSortedInsertEqualsTheScalarRuleOnEveryVariant) {
  const double inf = std::numeric_limits<double>::infinity();
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& k = TableOf(isa);
    for (int keep = 1; keep <= 32; ++keep) {
      const int columns = 9;
      Rng rng(80 + keep);
      // Ascending columns, some with -infinity slots (not yet filled) and ties.
      std::vector<double> slots(columns * keep), threshold(columns);
      for (int c = 0; c < columns; ++c) {
        double v = c % 3 == 0 ? -inf : rng.Uniform(-2.0, 0.0);
        for (int j = 0; j < keep; ++j) {
          if (j > 0 && rng.UniformInt(3) != 0) v += rng.Uniform(0.0, 0.5);
          slots[c * keep + j] = v;
        }
        threshold[c] = slots[c * keep];
      }
      std::vector<double> want = slots, want_thr = threshold;
      std::vector<int32_t> idx;
      // By column, as rump_winner_values writes them; columns not inserted hold a
      // value that must not be read (NaN: it would show in the slots).
      std::vector<double> stored(columns, std::numeric_limits<double>::quiet_NaN());
      for (int c = 0; c < columns; c += 1 + (c % 2)) {
        idx.push_back(c);
        // Above the smallest: a tie with a kept value, a new largest, +inf.
        const double low = slots[c * keep];
        const double pick[] = {slots[c * keep + (keep - 1) / 2], 3.0, inf,
                               low == -inf ? 0.0 : low + 1e-3};
        double v = pick[rng.UniformInt(4)];
        if (!(v > low)) v = 3.0;
        stored[c] = v;
        double* heap = want.data() + c * keep;
        for (int j = 0; j < keep; ++j) {
          const double next = j + 1 < keep ? heap[j + 1] : inf;
          const double here = heap[j] < v ? v : heap[j];
          heap[j] = next < v ? next : here;
        }
        want_thr[c] = heap[0];
      }
      k.insert_sorted(slots.data(), keep, idx.data(), stored.data(),
                      static_cast<int64_t>(idx.size()), threshold.data());
      ExpectSameBits(slots, want, "sorted insert", isa, keep);
      ExpectSameBits(threshold, want_thr, "sorted insert threshold", isa, keep);
      for (int c = 0; c < columns; ++c) {
        EXPECT_TRUE(std::is_sorted(slots.begin() + c * keep, slots.begin() + (c + 1) * keep))
            << simd::IsaName(isa) << " keep=" << keep << " column " << c;
      }
    }
  }
}

// The fixed-order product against its scalar definition (one running sum
// per element, products in k order, no fused multiply-add), on every
// variant: shapes around every tile edge (rows 1..13, columns 1..41 cross
// the 2-, 4- and 8-lane vectors and the 3- and 4-vector panels), k = 0,
// strided operands, accumulation into what C holds, and the awkward values
// (infinities times zeros give NaN; signed zeros; subnormals).
TEST_F(IsaTest, TheFixedOrderProductEqualsItsScalarDefinitionOnEveryVariant) {
  struct Case {
    int m, n, k;
    bool accumulate, specials;
  };
  std::vector<Case> cases;
  for (int m : {1, 2, 5, 6, 7, 13}) {
    for (int n : {1, 2, 3, 7, 8, 9, 12, 16, 17, 24, 31, 32, 33, 41}) {
      for (int k : {0, 1, 3, 19}) cases.push_back({m, n, k, (m + n + k) % 2 == 0, n % 3 == 0});
    }
  }
  cases.push_back({100, 129, 70, false, false});  // past one block of rows
  cases.push_back({97, 40, 300, true, true});
  for (Isa isa : simd::SupportedIsas()) {
    const Kernels& kern = TableOf(isa);
    for (const Case& c : cases) {
      // Rows further apart than the operands' widths: lda, ldb, ldc are read.
      const int lda = c.k + 3, ldb = c.n + 2, ldc = c.n + 5;
      const uint64_t seed = 1000u * c.m + 10u * c.n + c.k;
      const std::vector<double> a = Awkward(c.m * lda, seed, c.specials);
      const std::vector<double> b = Awkward(std::max(1, c.k) * ldb, seed + 1, c.specials);
      std::vector<double> out = Awkward(c.m * ldc, seed + 2, c.specials);
      std::vector<double> want = out;
      for (int i = 0; i < c.m; ++i) {
        for (int j = 0; j < c.n; ++j) {
          double s = c.accumulate ? want[i * ldc + j] : 0.0;
          for (int p = 0; p < c.k; ++p) {
            const double prod = a[i * lda + p] * b[p * ldb + j];
            s = s + prod;
          }
          want[i * ldc + j] = s;
        }
      }
      kern.gemm(c.m, c.n, c.k, a.data(), lda, b.data(), ldb, out.data(), ldc, c.accumulate);
      // A NaN's sign and payload are not fixed: x86 returns one operand's
      // NaN when both are NaN, and compilers may swap the operands of a
      // commutative add. Every NaN is a NaN in the same place, every other
      // double the same bits.
      for (size_t e = 0; e < out.size(); ++e) {
        if (std::isnan(out[e]) && std::isnan(want[e])) out[e] = want[e];
      }
      const int id = 10000 * c.m + 100 * c.n + c.k;
      ExpectSameBits(out, want, c.accumulate ? "gemm (accumulate)" : "gemm", isa, id);
    }
  }
}

// What WeightBox computed before blocks of rows: the whole-matrix product of
// MidRad(a) and b, then the bias added to every row.
IntervalMatrix WholeMatrixProduct(const Matrix& lo, const Matrix& hi, const MidRad& b,
                                  const Vector* bias_lo, const Vector* bias_hi) {
  IntervalMatrix z = RumpMatMul(MidRad(lo, hi, /*with_mag=*/false), b, RoundingMode::kNearest);
  if (bias_lo) {
    z.lower.rowwise() += bias_lo->transpose();
    z.upper.rowwise() += bias_hi->transpose();
  }
  return z;
}

void ExpectSameMatrixBits(const Matrix& got, const Matrix& want, const std::string& what) {
  ASSERT_EQ(got.rows(), want.rows()) << what;
  ASSERT_EQ(got.cols(), want.cols()) << what;
  for (Index i = 0; i < got.size(); ++i) {
    const double g = got.data()[i], w = want.data()[i];
    if (std::isnan(g) && std::isnan(w)) continue;  // as for gemm: any NaN
    ASSERT_TRUE(SameBits(g, w)) << what << " element " << i << ": " << g << " vs " << w;
  }
}

TEST_F(IsaTest, RumpProductsByBlocksOfRowsEqualTheWholeMatrixProductOnEveryVariant) {
  struct Shape {
    int n, k, c;
  };
  // Rows below, at and past one block (96), and a chunk of 256.
  const Shape shapes[] = {{1, 1, 1},   {5, 11, 50},  {95, 50, 1},   {96, 7, 9},
                          {97, 11, 50}, {256, 50, 1}, {200, 33, 17}, {40, 784, 12},
                          {200, 784, 10}, {0, 4, 3}};
  // a: 0 intervals of every kind, 1 a point, 2 a uniform ball x +- eps,
  // 3 intervals with awkward values (NaN, infinities, signed zeros);
  // b: 0 intervals, 1 a point, 2 intervals prepared without mag.
  for (Isa isa : simd::SupportedIsas()) {
    ASSERT_TRUE(simd::SetIsaForTesting(isa).ok());
    for (const Shape& sh : shapes) {
      for (int a_kind = 0; a_kind < 4; ++a_kind) {
        for (int b_kind = 0; b_kind < 3; ++b_kind) {
          const uint64_t seed = 7919u * sh.n + 131u * sh.k + 17u * sh.c + 5u * a_kind + b_kind;
          Rng rng(seed);
          Matrix lo(sh.n, sh.k), hi(sh.n, sh.k);
          const std::vector<double> awkward = Awkward(sh.n * sh.k, seed, true);
          for (Index i = 0; i < lo.size(); ++i) {
            const double x = rng.Normal(), w = std::abs(rng.Normal()) * 0.1;
            switch (a_kind) {
              case 0: lo.data()[i] = x - w; hi.data()[i] = x + (i % 5 == 0 ? 0.0 : w); break;
              case 1: lo.data()[i] = hi.data()[i] = x; break;
              case 2: lo.data()[i] = x - 0.01; hi.data()[i] = x + 0.01; break;
              default:
                lo.data()[i] = awkward[i];
                hi.data()[i] = std::isfinite(awkward[i]) ? awkward[i] + w : awkward[i];
            }
          }
          Matrix bl(sh.k, sh.c), bu(sh.k, sh.c);
          for (Index i = 0; i < bl.size(); ++i) {
            const double x = rng.Normal(), w = b_kind == 1 ? 0.0 : std::abs(rng.Normal()) * 0.05;
            bl.data()[i] = x - w;
            bu.data()[i] = x + w;
          }
          const MidRad b(bl, bu, /*with_mag=*/b_kind != 2);
          Vector bias_lo(sh.c), bias_hi(sh.c);
          for (int j = 0; j < sh.c; ++j) {
            bias_lo[j] = rng.Normal();
            bias_hi[j] = bias_lo[j] + std::abs(rng.Normal());
          }
          const std::string what = std::string(simd::IsaName(isa)) + " " + std::to_string(sh.n) +
                                   "x" + std::to_string(sh.k) + "x" + std::to_string(sh.c) +
                                   " a" + std::to_string(a_kind) + " b" + std::to_string(b_kind);
          for (bool with_bias : {true, false}) {
            const IntervalMatrix want =
                WholeMatrixProduct(lo, hi, b, with_bias ? &bias_lo : nullptr,
                                   with_bias ? &bias_hi : nullptr);
            const IntervalMatrix got =
                RumpMatMulRows(lo, hi, b, with_bias ? bias_lo.data() : nullptr,
                               with_bias ? bias_hi.data() : nullptr);
            ExpectSameMatrixBits(got.lower, want.lower, what + " lower");
            ExpectSameMatrixBits(got.upper, want.upper, what + " upper");
          }
        }
      }
    }
  }
}

Dataset Moons(int n, uint64_t seed) {
  Dataset d = MakeMoons(n, 0.1, seed);
  d.x = PolynomialFeatures(d.x, 3);
  return d;
}

struct Trained {
  Vector nominal, lower, upper;
};

bool SameBits(const Vector& a, const Vector& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<size_t>(a.size())) == 0;
}

Trained TrainUnder(Isa isa, const TrainConfig& cfg, const Dataset& data, const Vector& init) {
  EXPECT_TRUE(simd::SetIsaForTesting(isa).ok());
  auto result = Train(cfg, data, init);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return {};
  return {result->state.nominal, result->state.boxes[0].lower, result->state.boxes[0].upper};
}

class IsaTrainingTest : public ::testing::TestWithParam<PerturbationKind> {
 protected:
  void TearDown() override { ASSERT_TRUE(simd::SetIsaForTesting(start_).ok()); }
  const Isa start_ = simd::ActiveIsa();
};

TEST_P(IsaTrainingTest, TrainingGivesTheSameBoxesBitForBitUnderEveryVariant) {
  const Dataset data = Moons(400, 5);
  TrainConfig cfg;
  cfg.model = ModelSpec::Mlp({9, 64, 32, 1});
  cfg.loss = LossKind::kBinaryCrossEntropy;
  cfg.batch_size = 100;
  cfg.epochs = 2;
  cfg.optimizer.learning_rate = 0.5;
  cfg.perturbation.kind = GetParam();
  // Clipping everywhere, so the clamp kernel is on the path too.
  cfg.clip_gamma = 0.25;
  if (GetParam() == PerturbationKind::kBoundedPoisoning) cfg.perturbation.epsilon = 0.02;
  cfg.budgets = {{4, 0}};
  cfg.threads = 2;
  const Vector init = InitParameters(cfg.model, 11);
  const Trained base = TrainUnder(Isa::kBaseline, cfg, data, init);
  ASSERT_GT((base.upper - base.lower).sum(), 0.0);  // a box that grew
  for (Isa isa : simd::SupportedIsas()) {
    const Trained run = TrainUnder(isa, cfg, data, init);
    EXPECT_TRUE(SameBits(run.nominal, base.nominal)) << simd::IsaName(isa);
    EXPECT_TRUE(SameBits(run.lower, base.lower)) << simd::IsaName(isa);
    EXPECT_TRUE(SameBits(run.upper, base.upper)) << simd::IsaName(isa);
  }
}

INSTANTIATE_TEST_SUITE_P(AllKinds, IsaTrainingTest,
                         ::testing::Values(PerturbationKind::kRemoval,
                                           PerturbationKind::kSubstitution,
                                           PerturbationKind::kBoundedPoisoning));

}  // namespace
}  // namespace agt
