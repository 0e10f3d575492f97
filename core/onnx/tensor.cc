#include "core/onnx/tensor.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace agt::onnx {
namespace {

using ::onnx::TensorProto;

// The element count of `dims`, or an error; never overflows.
absl::Status CountValues(const TensorProto& t, int64_t max_values, int64_t max_dim,
                         std::vector<int64_t>* dims, int64_t* count) {
  if (t.data_location() == TensorProto::EXTERNAL || t.external_data_size() > 0) {
    return absl::UnimplementedError(
        "the tensor is stored outside the file (external data); export it inside the model "
        "(models under 2 GB are)");
  }
  if (t.has_segment()) return absl::UnimplementedError("segmented tensors are not supported");
  dims->clear();
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) return absl::InvalidArgumentError(absl::StrCat("dim ", d, " is negative"));
    if (d > max_dim) {
      return absl::ResourceExhaustedError(
          absl::StrCat("dim ", d, " exceeds the limit of ", max_dim));
    }
    dims->push_back(d);
    if (d == 0) {
      n = 0;
    } else if (n > max_values / d) {
      return absl::ResourceExhaustedError(
          absl::StrCat("has more than ", max_values, " values (the limit)"));
    }
    if (n != 0) n *= d;
  }
  if (n > max_values) {
    return absl::ResourceExhaustedError(
        absl::StrCat("has ", n, " values, more than the limit of ", max_values));
  }
  *count = n;
  return absl::OkStatus();
}

absl::Status SizeMismatch(const char* field, int64_t got, int64_t want) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " holds ", got, " values but the dims say ", want));
}

template <typename T>
absl::Status FromRaw(const std::string& raw, int64_t n, std::vector<T>* out) {
  if (static_cast<int64_t>(raw.size()) != n * static_cast<int64_t>(sizeof(T))) {
    return absl::InvalidArgumentError(absl::StrCat("raw_data has ", raw.size(),
                                                   " bytes but the dims say ", n, " values of ",
                                                   sizeof(T), " bytes"));
  }
  out->resize(static_cast<size_t>(n));
  if (n > 0) std::memcpy(out->data(), raw.data(), raw.size());
  return absl::OkStatus();
}

}  // namespace

std::string DataTypeName(int32_t data_type) {
  switch (data_type) {
    case TensorProto::FLOAT:
      return "float";
    case TensorProto::DOUBLE:
      return "double";
    case TensorProto::FLOAT16:
      return "float16";
    case TensorProto::BFLOAT16:
      return "bfloat16";
    case TensorProto::INT8:
      return "int8";
    case TensorProto::UINT8:
      return "uint8";
    case TensorProto::INT16:
      return "int16";
    case TensorProto::INT32:
      return "int32";
    case TensorProto::INT64:
      return "int64";
    case TensorProto::BOOL:
      return "bool";
    case TensorProto::STRING:
      return "string";
    default:
      return absl::StrCat("type ", data_type);
  }
}

absl::Status ReadFloatTensor(const TensorProto& t, int64_t max_values, int64_t max_dim,
                             std::vector<int64_t>* dims, std::vector<double>* values) {
  int64_t n = 0;
  if (absl::Status s = CountValues(t, max_values, max_dim, dims, &n); !s.ok()) return s;
  const bool raw = t.has_raw_data();
  if (t.data_type() == TensorProto::FLOAT) {
    std::vector<float> f;
    if (raw) {
      if (absl::Status s = FromRaw(t.raw_data(), n, &f); !s.ok()) return s;
    } else if (t.float_data_size() != n) {
      return SizeMismatch("float_data", t.float_data_size(), n);
    } else {
      f.assign(t.float_data().begin(), t.float_data().end());
    }
    values->assign(f.begin(), f.end());
  } else if (t.data_type() == TensorProto::DOUBLE) {
    if (raw) {
      if (absl::Status s = FromRaw(t.raw_data(), n, values); !s.ok()) return s;
    } else if (t.double_data_size() != n) {
      return SizeMismatch("double_data", t.double_data_size(), n);
    } else {
      values->assign(t.double_data().begin(), t.double_data().end());
    }
  } else {
    return absl::UnimplementedError(absl::StrCat("has element type ", DataTypeName(t.data_type()),
                                                 " (supported: float, double)"));
  }
  for (size_t k = 0; k < values->size(); ++k) {
    if (!std::isfinite((*values)[k])) {
      return absl::InvalidArgumentError(
          absl::StrCat("value ", k, " is ", (*values)[k], " (weights must be finite)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadIntTensor(const TensorProto& t, int64_t max_values, std::vector<int64_t>* dims,
                           std::vector<int64_t>* values) {
  int64_t n = 0;
  if (absl::Status s = CountValues(t, max_values, max_values, dims, &n); !s.ok()) return s;
  const bool raw = t.has_raw_data();
  if (t.data_type() == TensorProto::INT64) {
    if (raw) return FromRaw(t.raw_data(), n, values);
    if (t.int64_data_size() != n) return SizeMismatch("int64_data", t.int64_data_size(), n);
    values->assign(t.int64_data().begin(), t.int64_data().end());
  } else if (t.data_type() == TensorProto::INT32) {
    std::vector<int32_t> v;
    if (raw) {
      if (absl::Status s = FromRaw(t.raw_data(), n, &v); !s.ok()) return s;
    } else if (t.int32_data_size() != n) {
      return SizeMismatch("int32_data", t.int32_data_size(), n);
    } else {
      v.assign(t.int32_data().begin(), t.int32_data().end());
    }
    values->assign(v.begin(), v.end());
  } else {
    return absl::UnimplementedError(
        absl::StrCat("has element type ", DataTypeName(t.data_type()), " (expected int64)"));
  }
  return absl::OkStatus();
}

void WriteFloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                      const double* values, bool as_float32, TensorProto* t) {
  t->set_name(name);
  int64_t n = 1;
  for (int64_t d : dims) {
    t->add_dims(d);
    n *= d;
  }
  std::string* raw = t->mutable_raw_data();
  if (as_float32) {
    t->set_data_type(TensorProto::FLOAT);
    raw->resize(static_cast<size_t>(n) * sizeof(float));
    for (int64_t k = 0; k < n; ++k) {
      const float f = static_cast<float>(values[k]);
      std::memcpy(raw->data() + k * sizeof(float), &f, sizeof(float));
    }
  } else {
    t->set_data_type(TensorProto::DOUBLE);
    raw->resize(static_cast<size_t>(n) * sizeof(double));
    if (n > 0) std::memcpy(raw->data(), values, raw->size());
  }
}

}  // namespace agt::onnx
