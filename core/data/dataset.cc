#include "core/data/dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "core/common/decimal.h"
#include "core/common/rng.h"

namespace agt {
namespace {

// Largest label that label inference still reads as a class index.
constexpr double kMaxInferredClass = 999.0;

// Preconditions on arguments a caller controls (not user data): violating one is
// a programming error, so it stops the process instead of returning a Status.
void RequireOrDie(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "agt/data: precondition failed: %s\n", what);
  std::abort();
}

bool IsBlank(absl::string_view s) {
  return s.find_first_not_of(" \t\r") == absl::string_view::npos;
}

absl::string_view Trim(absl::string_view s) {
  const size_t begin = s.find_first_not_of(" \t");
  if (begin == absl::string_view::npos) return {};
  const size_t end = s.find_last_not_of(" \t");
  return s.substr(begin, end - begin + 1);
}

// Splits a line (without its line ending) into comma-separated fields.
void SplitFields(absl::string_view line, std::vector<absl::string_view>* fields) {
  fields->clear();
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    if (comma == absl::string_view::npos) {
      fields->push_back(line.substr(start));
      return;
    }
    fields->push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

// The lines of `text` with their '\n' and any '\r' before it removed, and the
// blank lines at the end dropped.
std::vector<absl::string_view> SplitLines(absl::string_view text) {
  std::vector<absl::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t newline = text.find('\n', start);
    if (newline == absl::string_view::npos) newline = text.size();
    absl::string_view line = text.substr(start, newline - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = newline + 1;
  }
  while (!lines.empty() && IsBlank(lines.back())) lines.pop_back();
  return lines;
}

std::string Where(size_t line, size_t column) {
  return absl::StrCat("line ", line, ", column ", column, ": ");
}

// Reads one trimmed field as a finite double, or says why not.
absl::Status ParseFiniteField(absl::string_view raw, size_t line, size_t column, double* value) {
  const absl::string_view field = Trim(raw);
  if (field.empty())
    return absl::InvalidArgumentError(absl::StrCat(Where(line, column), "empty field"));
  const DecimalParse parsed = ParseDecimal(field, value);
  if (parsed != DecimalParse::kOk) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(line, column), DecimalProblem(field, parsed)));
  }
  if (!std::isfinite(*value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(line, column), "\"", field, "\" is not finite (NaN or Inf)"));
  }
  return absl::OkStatus();
}

// 10^i for i <= 22: every one is a double exactly (5^22 < 2^53).
constexpr double kExactPowersOfTen[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                        1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                        1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

bool IsFieldBlank(char c) { return c == ' ' || c == '\t'; }

// The fast path of a CSV field: reads a number of the plain form
// [+-]digits[.digits][(e|E)[+-]digits] at *p and advances *p past it. False
// (and *p unchanged) for anything else, including a number that is not
// followed by a field boundary (a blank or ','; the caller's line has no line
// ending) or one that ParseDecimal refuses or reads as non-finite: the caller
// then reads the line the slow way, which says precisely what is wrong.
//
// Exactness: without an exponent, a literal with m <= 2^53 as its digits and
// f <= 22 digits after the point is m / 10^f, a quotient of two doubles that
// are exact, so IEEE division rounds it correctly: the same double as
// from_chars (Clinger's fast path). Every other literal goes to ParseDecimal.
bool ReadPlainNumber(const char** p, const char* end, double* value) {
  const char* s = *p;
  const char* const start = s;
  bool negative = false;
  if (s < end && (*s == '-' || *s == '+')) negative = *s++ == '-';
  uint64_t mantissa = 0;
  int significant = 0;  // digits of the mantissa after its leading zeros
  int fraction = 0;     // digits after the point
  auto digits = [&](bool after_point) {
    const char* first = s;
    for (; s < end && *s >= '0' && *s <= '9'; ++s) {
      if (mantissa == 0 && *s == '0') {
        if (after_point) ++fraction;
        continue;
      }
      if (++significant <= 19) mantissa = mantissa * 10 + static_cast<uint64_t>(*s - '0');
      if (after_point) ++fraction;
    }
    return s > first;
  };
  if (!digits(false)) return false;
  if (s < end && *s == '.') {
    ++s;
    if (!digits(true)) return false;
  }
  bool exponent = false;
  if (s < end && (*s == 'e' || *s == 'E')) {
    exponent = true;
    ++s;
    if (s < end && (*s == '-' || *s == '+')) ++s;
    const char* first = s;
    while (s < end && *s >= '0' && *s <= '9') ++s;
    if (s == first) return false;
  }
  if (s < end && *s != ',' && !IsFieldBlank(*s)) return false;
  if (!exponent && significant <= 19 && mantissa <= (uint64_t{1} << 53) && fraction <= 22) {
    const double magnitude = static_cast<double>(mantissa) / kExactPowersOfTen[fraction];
    *value = negative ? -magnitude : magnitude;
  } else {
    double parsed = 0.0;
    const DecimalParse result =
        ParseDecimal(absl::string_view(start, static_cast<size_t>(s - start)), &parsed);
    if (result != DecimalParse::kOk || !std::isfinite(parsed)) return false;
    *value = parsed;
  }
  *p = s;
  return true;
}

// Reads a data line of exactly `num_columns` plain numbers (blanks around
// them allowed) into x_row[0 .. num_columns - 2] and *label, in one pass
// without splitting the line. False when the line is anything else (the
// caller then reads it the slow way, which gives the same values or the
// precise error).
bool ReadPlainRow(absl::string_view line, size_t num_columns, double* x_row, double* label) {
  const char* p = line.data();
  const char* const end = p + line.size();
  for (size_t c = 0; c < num_columns; ++c) {
    while (p < end && IsFieldBlank(*p)) ++p;
    double value;
    if (!ReadPlainNumber(&p, end, &value)) return false;
    while (p < end && IsFieldBlank(*p)) ++p;
    if (c + 1 < num_columns) {
      if (p == end || *p != ',') return false;
      ++p;
      x_row[c] = value;
    } else {
      if (p != end) return false;
      *label = value;
    }
  }
  return true;
}

absl::Status CheckClassLabel(double label, int num_classes, absl::string_view field, size_t line,
                             size_t column) {
  if (label != std::floor(label)) {
    return absl::InvalidArgumentError(absl::StrCat(Where(line, column), "label \"", Trim(field),
                                                   "\" is not an integer class index"));
  }
  if (label < 0 || label >= num_classes) {
    return absl::InvalidArgumentError(absl::StrCat(Where(line, column), "label \"", Trim(field),
                                                   "\" is outside the classes 0..",
                                                   num_classes - 1));
  }
  return absl::OkStatus();
}

// A uniformly random permutation of 0..n-1 (Fisher-Yates, from the last slot).
std::vector<Index> Permutation(Index n, Rng& rng) {
  std::vector<Index> order(n);
  for (Index i = 0; i < n; ++i) order[i] = i;
  for (Index i = n - 1; i > 0; --i) {
    const Index j = static_cast<Index>(rng.UniformInt(static_cast<uint64_t>(i) + 1));
    std::swap(order[i], order[j]);
  }
  return order;
}

absl::Status ErrnoStatus(int err, absl::string_view action, const std::string& path) {
  const std::string message =
      absl::StrCat("cannot ", action, " '", path, "': ", std::strerror(err));
  if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

// The file's bytes in one read of its size (a stream copied through a
// stringstream costs two more copies of a 20 MB CSV, and their page faults).
absl::Status ReadWholeFile(const std::string& path, std::string* contents) {
  errno = 0;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return ErrnoStatus(errno != 0 ? errno : ENOENT, "open", path);
  struct stat info;
  if (fstat(fileno(file), &info) == 0 && S_ISREG(info.st_mode)) {
    contents->resize(static_cast<size_t>(info.st_size));
  }
  size_t size = 0;
  for (;;) {
    if (size == contents->size()) {
      // At the size fstat gave (or not a regular file): read on in small
      // pieces until the end.
      char piece[1 << 14];
      const size_t got = std::fread(piece, 1, sizeof piece, file);
      if (got == 0) break;
      contents->append(piece, got);
      size += got;
      continue;
    }
    const size_t got = std::fread(contents->data() + size, 1, contents->size() - size, file);
    if (got == 0) break;
    size += got;
  }
  const bool failed = std::ferror(file) != 0;
  const int read_errno = errno;
  std::fclose(file);
  if (failed) return ErrnoStatus(read_errno != 0 ? read_errno : EIO, "read", path);
  contents->resize(size);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int> InferNumClasses(const Vector& y) {
  double max_label = 0.0;
  Index outside = -1;  // first integral label outside [0, kMaxInferredClass]
  for (Index i = 0; i < y.size(); ++i) {
    const double label = y[i];
    if (label != std::floor(label)) return 0;  // a fractional label: regression
    if (label < 0 || label > kMaxInferredClass) {
      if (outside < 0) outside = i;
      continue;
    }
    max_label = std::max(max_label, label);
  }
  if (outside >= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "row %d: label %.17g is an integer outside the class indices 0..%d, so whether the "
        "labels are classes or regression targets cannot be inferred; say num_classes "
        "(0 = regression, C >= 2 = classes 0..C-1)",
        outside, y[outside], static_cast<int>(kMaxInferredClass)));
  }
  return std::max(2, static_cast<int>(max_label) + 1);
}

absl::Status Dataset::Validate() const {
  if (y.size() != x.rows()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset has ", x.rows(), " feature rows but ", y.size(), " labels"));
  }
  if (num_classes < 0 || num_classes == 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_classes ", num_classes, " must be 0 (regression) or at least 2"));
  }
  for (Index i = 0; i < x.rows(); ++i) {
    for (Index j = 0; j < x.cols(); ++j) {
      if (!std::isfinite(x(i, j))) {
        return absl::InvalidArgumentError(
            absl::StrCat("row ", i, ", feature ", j, ": value ", x(i, j), " is not finite"));
      }
    }
    const double label = y[i];
    if (!std::isfinite(label)) {
      return absl::InvalidArgumentError(
          absl::StrCat("row ", i, ": label ", label, " is not finite"));
    }
    if (num_classes >= 2 && (label != std::floor(label) || label < 0 || label >= num_classes)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "row ", i, ": label ", label, " is not a class index in 0..", num_classes - 1));
    }
  }
  return absl::OkStatus();
}

Dataset Dataset::Slice(Index begin, Index end) const {
  RequireOrDie(0 <= begin && begin <= end && end <= size(),
               "Slice needs 0 <= begin <= end <= size");
  Dataset out;
  out.x = x.middleRows(begin, end - begin);
  out.y = y.segment(begin, end - begin);
  out.num_classes = num_classes;
  return out;
}

Dataset Dataset::Select(const std::vector<Index>& rows) const {
  Dataset out;
  out.x.resize(static_cast<Index>(rows.size()), dim());
  out.y.resize(static_cast<Index>(rows.size()));
  for (size_t i = 0; i < rows.size(); ++i) {
    RequireOrDie(0 <= rows[i] && rows[i] < size(), "Select needs every row in [0, size)");
    out.x.row(static_cast<Index>(i)) = x.row(rows[i]);
    out.y[static_cast<Index>(i)] = y[rows[i]];
  }
  out.num_classes = num_classes;
  return out;
}

absl::StatusOr<Dataset> ParseCsv(const std::string& text, const CsvOptions& options) {
  if (options.num_classes < -1 || options.num_classes == 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_classes ", options.num_classes, " must be -1 (infer), 0 (regression) or at least 2"));
  }
  absl::string_view body = text;
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);  // UTF-8 byte order mark
  const std::vector<absl::string_view> lines = SplitLines(body);
  if (lines.empty()) {
    return absl::InvalidArgumentError("line 1: the CSV is empty (no header and no data rows)");
  }

  std::vector<absl::string_view> header_fields;
  SplitFields(lines[0], &header_fields);
  const size_t num_columns = header_fields.size();
  // A header is a first line whose first field is text. An empty first field
  // is not taken as a header: it is a data row with a missing value.
  double ignored;
  const absl::string_view first = Trim(header_fields[0]);
  const bool has_header =
      !first.empty() && ParseDecimal(first, &ignored) == DecimalParse::kNotANumber;
  if (num_columns < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line 1: found 1 column; need at least one feature column and the label column"));
  }
  const size_t first_data = has_header ? 1 : 0;
  if (first_data >= lines.size()) {
    return absl::InvalidArgumentError("line 2: no data rows after the header");
  }

  const size_t num_rows = lines.size() - first_data;
  const size_t dim = num_columns - 1;
  Dataset data;
  data.x.resize(static_cast<Index>(num_rows), static_cast<Index>(dim));
  data.y.resize(static_cast<Index>(num_rows));
  // Rows [r_begin, r_end); the first error among them.
  const auto parse_rows = [&](size_t r_begin, size_t r_end) -> absl::Status {
    std::vector<absl::string_view> fields;
    for (size_t r = r_begin; r < r_end; ++r) {
      const size_t line = first_data + r + 1;
      const absl::string_view text_line = lines[first_data + r];
      const Index row = static_cast<Index>(r);
      double label = 0.0;
      if (ReadPlainRow(text_line, num_columns, &data.x(row, 0), &label) &&
          (options.num_classes < 2 ||
           (label == std::floor(label) && label >= 0 && label < options.num_classes))) {
        data.y[row] = label;
        continue;
      }
      // Not a line of plain numbers, or a bad one: read it field by field,
      // which reads what the fast path refuses and names the line and column of
      // what is wrong.
      if (IsBlank(text_line)) {
        return absl::InvalidArgumentError(
            absl::StrCat("line ", line, ", column 1: blank line before the end of the data"));
      }
      SplitFields(text_line, &fields);
      if (fields.size() != num_columns) {
        const size_t column = std::min(fields.size(), num_columns) + 1;
        return absl::InvalidArgumentError(absl::StrCat(
            Where(line, column), "expected ", num_columns, " fields, found ", fields.size()));
      }
      for (size_t c = 0; c < dim; ++c) {
        absl::Status status = ParseFiniteField(fields[c], line, c + 1, &data.x(row, Index(c)));
        if (!status.ok()) return status;
      }
      absl::Status status = ParseFiniteField(fields[dim], line, num_columns, &label);
      if (!status.ok()) return status;
      if (options.num_classes >= 2) {
        status = CheckClassLabel(label, options.num_classes, fields[dim], line, num_columns);
        if (!status.ok()) return status;
      }
      data.y[row] = label;
    }
    return absl::OkStatus();
  };
  int threads = options.threads > 0
                    ? options.threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  constexpr size_t kBytesPerThread = size_t{1} << 20;
  threads = static_cast<int>(std::min<size_t>(
      {static_cast<size_t>(threads), num_rows, body.size() / kBytesPerThread + 1}));
  if (threads <= 1) {
    if (absl::Status status = parse_rows(0, num_rows); !status.ok()) return status;
  } else {
    // Ranges in line order: the first range's error is the first error.
    std::vector<absl::Status> status(static_cast<size_t>(threads));
    std::vector<std::thread> workers;
    const auto range_begin = [&](int t) { return num_rows * static_cast<size_t>(t) / threads; };
    for (int t = 1; t < threads; ++t) {
      workers.emplace_back([&, t] { status[t] = parse_rows(range_begin(t), range_begin(t + 1)); });
    }
    status[0] = parse_rows(0, range_begin(1));
    for (std::thread& w : workers) w.join();
    for (const absl::Status& s : status) {
      if (!s.ok()) return s;
    }
  }
  if (options.num_classes >= 0) {
    data.num_classes = options.num_classes;
  } else {
    absl::StatusOr<int> classes = InferNumClasses(data.y);
    if (!classes.ok()) return classes.status();
    data.num_classes = *classes;
  }
  return data;
}

absl::StatusOr<Dataset> ReadCsv(const std::string& path, const CsvOptions& options) {
  std::string contents;
  if (absl::Status status = ReadWholeFile(path, &contents); !status.ok()) return status;
  absl::StatusOr<Dataset> data = ParseCsv(contents, options);
  if (!data.ok()) {
    return absl::Status(data.status().code(), absl::StrCat(path, ": ", data.status().message()));
  }
  return data;
}

absl::Status WriteCsv(const Dataset& data, const std::string& path) {
  if (absl::Status status = data.Validate(); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("not writing '", path, "': ", status.message()));
  }
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return ErrnoStatus(errno, "create", path);
  std::string out;
  for (Index j = 0; j < data.dim(); ++j) absl::StrAppend(&out, "x", j, ",");
  out += "y\n";
  bool ok = std::fwrite(out.data(), 1, out.size(), file) == out.size();
  for (Index i = 0; ok && i < data.size(); ++i) {
    out.clear();
    for (Index j = 0; j < data.dim(); ++j) absl::StrAppendFormat(&out, "%.17g,", data.x(i, j));
    absl::StrAppendFormat(&out, "%.17g\n", data.y[i]);
    ok = std::fwrite(out.data(), 1, out.size(), file) == out.size();
  }
  const int write_errno = errno;
  if (std::fclose(file) != 0 && ok) return ErrnoStatus(errno, "close", path);
  if (!ok) return ErrnoStatus(write_errno, "write", path);
  return absl::OkStatus();
}

Dataset MakeMoons(int n, double noise, uint64_t seed) {
  RequireOrDie(n >= 0, "MakeMoons needs n >= 0");
  RequireOrDie(noise >= 0, "MakeMoons needs noise >= 0");
  const int n_first = n - n / 2;
  const int n_second = n / 2;
  constexpr double kPi = 3.14159265358979323846;
  // linspace(0, pi, m): m points with both ends included (one point: t = 0).
  auto angle = [&](int i, int m) { return m > 1 ? kPi * i / (m - 1) : 0.0; };

  Dataset ordered;
  ordered.x.resize(n, 2);
  ordered.y.resize(n);
  ordered.num_classes = 2;
  for (int i = 0; i < n_first; ++i) {
    const double t = angle(i, n_first);
    ordered.x.row(i) << std::cos(t), std::sin(t);
    ordered.y[i] = 0.0;
  }
  for (int i = 0; i < n_second; ++i) {
    const double t = angle(i, n_second);
    ordered.x.row(n_first + i) << 1.0 - std::cos(t), 1.0 - std::sin(t) - 0.5;
    ordered.y[n_first + i] = 1.0;
  }
  Rng rng(seed);
  // Draw the noise even when it is 0, so that the shuffle depends only on seed and n.
  for (Index i = 0; i < ordered.x.rows(); ++i) {
    for (Index j = 0; j < 2; ++j) ordered.x(i, j) += noise * rng.Normal();
  }
  return ordered.Select(Permutation(n, rng));
}

Dataset MakeBlobs(int n, int dim, int classes, double stddev, double center_box, uint64_t seed) {
  RequireOrDie(n >= 0, "MakeBlobs needs n >= 0");
  RequireOrDie(dim >= 1, "MakeBlobs needs dim >= 1");
  RequireOrDie(classes >= 2, "MakeBlobs needs classes >= 2");
  RequireOrDie(stddev >= 0 && center_box >= 0, "MakeBlobs needs stddev, center_box >= 0");
  Rng rng(seed);
  // The centres come first in the stream, so they do not depend on n or stddev.
  Matrix centres(classes, dim);
  for (Index c = 0; c < classes; ++c) {
    for (Index j = 0; j < dim; ++j) centres(c, j) = rng.Uniform(-center_box, center_box);
  }
  Dataset ordered;
  ordered.x.resize(n, dim);
  ordered.y.resize(n);
  ordered.num_classes = classes;
  Index row = 0;
  for (int c = 0; c < classes; ++c) {
    const int count = n / classes + (c < n % classes ? 1 : 0);
    for (int k = 0; k < count; ++k, ++row) {
      for (Index j = 0; j < dim; ++j) ordered.x(row, j) = centres(c, j) + stddev * rng.Normal();
      ordered.y[row] = c;
    }
  }
  return ordered.Select(Permutation(n, rng));
}

int PolynomialFeatureCount(int dim, int degree) {
  RequireOrDie(dim >= 0 && degree >= 0, "PolynomialFeatureCount needs dim, degree >= 0");
  // C(dim + degree, degree) - 1, built up as C(dim + k, k) = C(dim + k - 1, k - 1) (dim + k) / k.
  int64_t binomial = 1;
  for (int k = 1; k <= degree; ++k) {
    binomial = binomial * (dim + k) / k;
    RequireOrDie(binomial <= (int64_t{1} << 31), "PolynomialFeatureCount overflows int");
  }
  return static_cast<int>(binomial - 1);
}

Matrix PolynomialFeatures(const Matrix& x, int degree) {
  RequireOrDie(degree >= 0, "PolynomialFeatures needs degree >= 0");
  const int dim = static_cast<int>(x.cols());
  Matrix out(x.rows(), PolynomialFeatureCount(dim, degree));
  if (degree == 0 || dim == 0) return out;
  out.leftCols(dim) = x;
  // start[j]: the first column of the previous degree's block whose monomial
  // has smallest index >= j. Each degree-k monomial x_j * m, with m a
  // degree-(k-1) monomial whose indices are all >= j, goes in lexicographic
  // order; multiplying x_j on the left of m matches scikit-learn's rounding.
  std::vector<Index> start(dim);
  for (int j = 0; j < dim; ++j) start[j] = j;
  Index block_end = dim;
  Index next = dim;
  for (int k = 2; k <= degree; ++k) {
    std::vector<Index> new_start(dim);
    for (int j = 0; j < dim; ++j) {
      new_start[j] = next;
      const Index width = block_end - start[j];
      out.middleCols(next, width) =
          (out.middleCols(start[j], width).array().colwise() * x.col(j).array()).matrix();
      next += width;
    }
    start = std::move(new_start);
    block_end = next;
  }
  return out;
}

Split TrainTestSplit(const Dataset& data, double test_fraction, uint64_t seed) {
  RequireOrDie(test_fraction >= 0 && test_fraction <= 1,
               "TrainTestSplit needs test_fraction in [0, 1]");
  Rng rng(seed);
  const std::vector<Index> order = Permutation(data.size(), rng);
  const Index num_test = static_cast<Index>(std::llround(test_fraction * data.size()));
  Split split;
  split.test = data.Select(std::vector<Index>(order.begin(), order.begin() + num_test));
  split.train = data.Select(std::vector<Index>(order.begin() + num_test, order.end()));
  return split;
}

}  // namespace agt
