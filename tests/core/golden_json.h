// Loading the reference implementation's unit vectors
// (tests/data/goldens/units/*.json; see goldens/README.md) and comparing the
// core's numbers against them, shared by golden_units_test.cc and
// golden_conv_units_test.cc. Tolerances follow the README: 1e-9 relative for
// float64 quantities.
#ifndef AGT_TESTS_CORE_GOLDEN_JSON_H_
#define AGT_TESTS_CORE_GOLDEN_JSON_H_

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/common/types.h"
#include "core/interval/interval.h"
#include "core/model/model.h"

namespace agt::golden_json {

using json = nlohmann::json;

inline constexpr double kRel = 1e-9;
inline constexpr double kAbs = 1e-12;

// ---------------------------------------------------------------------------
// Loading and converting the JSON files.

inline std::filesystem::path UnitsDir() {
  return std::filesystem::path(AGT_TEST_DATA_DIR) / "goldens" / "units";
}

// Loads units/<name>; an unreadable or unparsable file is a test failure.
inline ::testing::AssertionResult LoadUnit(const std::string& name, json* out) {
  const std::filesystem::path path = UnitsDir() / name;
  std::ifstream in(path);
  if (!in) return ::testing::AssertionFailure() << "cannot open " << path;
  try {
    *out = json::parse(in);
  } catch (const json::exception& e) {
    return ::testing::AssertionFailure() << path << ": " << e.what();
  }
  return ::testing::AssertionSuccess();
}

inline void FlattenInto(const json& j, std::vector<double>* out) {
  if (j.is_array()) {
    for (const json& e : j) FlattenInto(e, out);
    return;
  }
  out->push_back(j.get<double>());
}

// Any nesting of arrays, flattened row-major.
inline Vector ToVector(const json& j) {
  std::vector<double> v;
  FlattenInto(j, &v);
  return Eigen::Map<const Vector>(v.data(), static_cast<Index>(v.size()));
}

// A 2-d array [rows][cols].
inline Matrix ToMatrix(const json& j) {
  const Index rows = static_cast<Index>(j.size());
  const Index cols = rows == 0 ? 0 : static_cast<Index>(j.at(0).size());
  Matrix m(rows, cols);
  for (Index r = 0; r < rows; ++r) {
    for (Index c = 0; c < cols; ++c) m(r, c) = j.at(r).at(c).get<double>();
  }
  return m;
}

// A 2-d array as one matrix, or a 3-d array as its 2-d slices along the
// leading (batch) index.
inline std::vector<Matrix> ToMatrixBatch(const json& j) {
  if (j.at(0).at(0).is_array()) {
    std::vector<Matrix> slices;
    for (const json& s : j) slices.push_back(ToMatrix(s));
    return slices;
  }
  return {ToMatrix(j)};
}

// A list of per-sample tensors [T_1, ..., T_m], each with a leading sample
// index of the same size N, as the N x P matrix whose row i concatenates the
// flattened (row-major, i.e. C-major for N x C x H x W) T_1[i], ..., T_m[i].
// With one tensor it is that tensor as N x features; with [W1, b1, ...] it is
// the flat parameter layout of model/model.h (a conv weight O x C x kh x kw
// flattened row-major is the core's O x (C kh kw)).
inline Matrix PerSampleRows(const json& tensors) {
  const size_t n = tensors.at(0).size();
  std::vector<std::vector<double>> rows(n);
  for (const json& t : tensors) {
    EXPECT_EQ(t.size(), n) << "per-sample tensors disagree on the sample count";
    for (size_t i = 0; i < n && i < t.size(); ++i) FlattenInto(t.at(i), &rows[i]);
  }
  const Index cols = n == 0 ? 0 : static_cast<Index>(rows[0].size());
  Matrix m(static_cast<Index>(n), cols);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(static_cast<Index>(rows[i].size()), cols);
    for (Index c = 0; c < cols && c < static_cast<Index>(rows[i].size()); ++c) {
      m(static_cast<Index>(i), c) = rows[i][c];
    }
  }
  return m;
}

// One tensor N x (anything) as N x features.
inline Matrix Rows(const json& tensor) { return PerSampleRows(json::array({tensor})); }

// [{"weight": [...], "bias": [...]}, ...] in the flat layout.
inline Vector ParametersFromList(const json& layers) {
  std::vector<double> v;
  for (const json& layer : layers) {
    FlattenInto(layer.at("weight"), &v);
    FlattenInto(layer.at("bias"), &v);
  }
  return Eigen::Map<const Vector>(v.data(), static_cast<Index>(v.size()));
}

// A model with its initial parameters and a box around them, and inputs
// (with the box [x - eps, x + eps]) and labels: passes.json, and each case of
// conv_passes.json.
struct PassesCase {
  ModelSpec spec;
  Vector init;
  ParameterBox box;
  Matrix x;
  double eps = 0.0;
  Vector labels;
};

// The ibp_* entries of passes.json and conv_passes.json, one per interval
// product.
struct NamedMethod {
  const char* key;
  MatMulMethod method;
};
inline constexpr NamedMethod kIbpEntries[] = {{"ibp_rump", MatMulMethod::kRump},
                                              {"ibp_exact", MatMulMethod::kExact},
                                              {"ibp_nguyen", MatMulMethod::kNguyen}};

// ---------------------------------------------------------------------------
// Comparisons.

inline bool Near(double actual, double expected, double rel, double abs) {
  return std::abs(actual - expected) <= abs + rel * std::abs(expected);
}

// The largest |actual - expected| / (1 + |expected|), for messages.
template <typename A, typename B>
double MaxError(const Eigen::MatrixBase<A>& actual, const Eigen::MatrixBase<B>& expected) {
  if (actual.rows() != expected.rows() || actual.cols() != expected.cols()) return INFINITY;
  double worst = 0.0;
  for (Index r = 0; r < expected.rows(); ++r) {
    for (Index c = 0; c < expected.cols(); ++c) {
      worst = std::max(worst,
                       std::abs(actual(r, c) - expected(r, c)) / (1.0 + std::abs(expected(r, c))));
    }
  }
  return worst;
}

// Expects |actual - expected| <= abs + rel |expected| for every entry and
// reports the first few entries that miss, then how many missed and the
// largest error. Returns whether all matched.
template <typename A, typename B>
bool ExpectNear(const Eigen::MatrixBase<A>& actual, const Eigen::MatrixBase<B>& expected,
                const std::string& what, double rel = kRel, double abs = kAbs) {
  if (actual.rows() != expected.rows() || actual.cols() != expected.cols()) {
    ADD_FAILURE() << what << ": shape " << actual.rows() << " x " << actual.cols() << ", reference "
                  << expected.rows() << " x " << expected.cols();
    return false;
  }
  int misses = 0;
  for (Index r = 0; r < expected.rows(); ++r) {
    for (Index c = 0; c < expected.cols(); ++c) {
      if (Near(actual(r, c), expected(r, c), rel, abs)) continue;
      if (++misses <= 5) {
        ADD_FAILURE() << what << "(" << r << ", " << c << "): got " << actual(r, c)
                      << ", reference " << expected(r, c) << ", difference "
                      << actual(r, c) - expected(r, c);
      }
    }
  }
  if (misses > 0) {
    ADD_FAILURE() << what << ": " << misses << " entries differ in all, max error "
                  << MaxError(actual, expected) << " (relative to 1 + |reference|)";
  }
  return misses == 0;
}

inline void ExpectNear(double actual, double expected, const std::string& what, double rel = kRel,
                       double abs = kAbs) {
  EXPECT_TRUE(Near(actual, expected, rel, abs)) << what << ": got " << actual << ", reference "
                                                << expected << ", difference " << actual - expected;
}

// Expects lower - tol <= value <= upper + tol entrywise, reporting the worst miss.
inline void ExpectInside(const Matrix& value, const Matrix& lower, const Matrix& upper,
                         const std::string& what, double tol) {
  ASSERT_EQ(value.rows(), lower.rows()) << what;
  ASSERT_EQ(value.cols(), lower.cols()) << what;
  double worst = 0.0;
  Index worst_r = 0, worst_c = 0;
  for (Index r = 0; r < value.rows(); ++r) {
    for (Index c = 0; c < value.cols(); ++c) {
      const double excess = std::max(lower(r, c) - value(r, c), value(r, c) - upper(r, c));
      if (excess > worst) {
        worst = excess;
        worst_r = r;
        worst_c = c;
      }
    }
  }
  EXPECT_LE(worst, tol) << what << ": (" << worst_r << ", " << worst_c << ") value "
                        << value(worst_r, worst_c) << " outside [" << lower(worst_r, worst_c)
                        << ", " << upper(worst_r, worst_c) << "]";
}

}  // namespace agt::golden_json

#endif  // AGT_TESTS_CORE_GOLDEN_JSON_H_
