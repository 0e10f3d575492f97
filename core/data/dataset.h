// Datasets: a feature matrix, one label per row, and what the labels mean;
// CSV reading with validation; generators (half-moons, blobs); polynomial
// feature expansion; deterministic train/test split.
//
// CSV format: an optional header row (detected when its first field is
// non-empty and does not parse as a number), then one row per example,
// features first and the label in the last column; comma-separated, no
// quoting, spaces around a field ignored, "\n" or "\r\n" line endings, blank
// lines allowed only at the end. Numbers are read correctly rounded, so any
// double printed with 17 significant digits (or Python's repr) reads back
// bit-exactly. Every error names the line (1-based) and column (1-based) of the
// problem; NaN and Inf ("nan", "inf") are errors.
#ifndef AGT_CORE_DATA_DATASET_H_
#define AGT_CORE_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/common/types.h"

namespace agt {

struct Dataset {
  Matrix x;             // N x d, row i = example i, in training order
  Vector y;             // N labels: class indices (as doubles) or regression targets
  int num_classes = 0;  // 0 = regression; 2 = binary; C = classes 0..C-1

  Index size() const { return x.rows(); }
  Index dim() const { return x.cols(); }
  // Finite features and labels; classification labels integral in [0, C).
  absl::Status Validate() const;
  // Rows [begin, end). Requires 0 <= begin <= end <= size() (aborts otherwise).
  Dataset Slice(Index begin, Index end) const;
  // The rows listed, in that order (repeats allowed). Every row must be in
  // [0, size()) (aborts otherwise).
  Dataset Select(const std::vector<Index>& rows) const;
};

struct CsvOptions {
  // 0 = regression (any finite label); C >= 2: labels must be integers 0..C-1.
  // -1 = infer (InferNumClasses).
  int num_classes = -1;
  // Threads that parse the rows (each a contiguous range of lines; the same
  // doubles, and the first error by line, whatever the count). 0 = one per
  // core. A text under about a megabyte takes one.
  int threads = 1;
};

// The label rule of CsvOptions{num_classes = -1}: integral labels all in
// [0, 999] are classes 0..max (at least two); any fractional label means
// regression (0). Integral labels with one outside [0, 999] (-1, 1e9) are
// InvalidArgument naming the row: they could be either, and guessing
// regression would silently train the wrong model.
absl::StatusOr<int> InferNumClasses(const Vector& y);

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options = {});
absl::StatusOr<Dataset> ParseCsv(const std::string& text, const CsvOptions& options = {});
// Writes a header x0..x{d-1},y and rows with round-trip precision (%.17g).
// Refuses (InvalidArgument) data that fails Validate, so every file written
// reads back; ReadCsv of the file gives the same doubles bit for bit.
absl::Status WriteCsv(const Dataset& data, const std::string& path);

// Two interleaving half circles (as scikit-learn's make_moons): label 0 on
// (cos t, sin t), label 1 on (1 - cos t, 1 - sin t - 0.5), t in [0, pi],
// Gaussian noise of stddev `noise`, rows shuffled. Deterministic in seed.
// Label 0 gets ceil(n / 2) rows, label 1 floor(n / 2); each arc's t values are
// evenly spaced with both ends included.
Dataset MakeMoons(int n, double noise, uint64_t seed);
// `classes` isotropic Gaussian blobs in `dim` dimensions with centres drawn
// uniformly in [-center_box, center_box], stddev `stddev`, rows shuffled.
// Class c gets n / classes rows, plus one when c < n % classes. The centres
// depend only on (dim, classes, center_box, seed), not on n or stddev.
Dataset MakeBlobs(int n, int dim, int classes, double stddev, double center_box, uint64_t seed);

// All monomials of the inputs of total degree 1..degree, without the constant,
// ordered as scikit-learn's PolynomialFeatures(include_bias=False): degree 1
// terms, then degree 2 in lexicographic index order, and so on. For d = 2 and
// degree 3: x0, x1, x0^2, x0 x1, x1^2, x0^3, x0^2 x1, x0 x1^2, x1^3.
Matrix PolynomialFeatures(const Matrix& x, int degree);
int PolynomialFeatureCount(int dim, int degree);

// A deterministic split: rows permuted by Rng(seed), the first
// round(test_fraction * N) (halves away from zero) become the test set, the
// rest the training set, both in permuted order.
struct Split {
  Dataset train;
  Dataset test;
};
Split TrainTestSplit(const Dataset& data, double test_fraction, uint64_t seed);

}  // namespace agt

#endif  // AGT_CORE_DATA_DATASET_H_
