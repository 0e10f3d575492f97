#include "core/cli/config.h"

#include <sys/stat.h>

#ifdef AGT_WITH_ONNX
#include "core/onnx/import.h"
#endif

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/cli/json_io.h"
#include "core/loss/loss.h"

namespace agt::cli {

using nlohmann::json;

namespace {

absl::Status Invalid(const std::string& path, absl::string_view problem) {
  return absl::InvalidArgumentError(path.empty() ? std::string(problem)
                                                 : absl::StrCat(path, ": ", problem));
}

// Keeps the code of `status` and puts `prefix: ` in front of its message.
absl::Status Prefixed(const absl::Status& status, absl::string_view prefix) {
  return absl::Status(status.code(), absl::StrCat(prefix, ": ", status.message()));
}

std::string TypeName(const json& value) {
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_boolean()) return "a boolean";
  if (value.is_array()) return "an array";
  if (value.is_object()) return "an object";
  return "null";
}

std::string ResolvePath(const std::string& base_dir, const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_absolute() || base_dir.empty()) return p.string();
  return (std::filesystem::path(base_dir) / p).string();
}

}  // namespace

// ---------------------------------------------------------------------------
// JSON files.

absl::StatusOr<json> ReadJsonFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string text;
  struct stat info;
  if (fstat(fileno(file), &info) == 0 && S_ISREG(info.st_mode)) {
    text.reserve(static_cast<size_t>(info.st_size));
  }
  char piece[1 << 16];
  for (;;) {
    const size_t got = std::fread(piece, 1, sizeof piece, file);
    if (got == 0) break;
    text.append(piece, got);
  }
  const bool failed = std::ferror(file) != 0;
  const int read_errno = errno;
  std::fclose(file);
  if (failed) {
    return absl::DataLossError(absl::StrCat(path, ": cannot read: ", std::strerror(read_errno)));
  }
  absl::StatusOr<json> value = ParseJson(text);
  if (!value.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": invalid JSON: ", value.status().message()));
  }
  return value;
}

absl::Status WriteJsonFile(const json& value, const std::string& path, int indent, int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::string tmp = path + ".tmp";
  std::FILE* file = std::fopen(tmp.c_str(), "wb");
  if (file == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": cannot write: ", std::strerror(errno)));
  }
  const bool written = WriteJson(value, indent, file, threads) && std::fputc('\n', file) != EOF;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    return absl::DataLossError(absl::StrCat(path, ": write failed"));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::DataLossError(absl::StrCat(path, ": cannot rename: ", ec.message()));
  return absl::OkStatus();
}

std::string JoinPath(absl::string_view parent, absl::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(parent, ".", key);
}

std::string IndexPath(absl::string_view parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

// ---------------------------------------------------------------------------
// Value checks.

absl::Status ExpectDouble(const json& value, const std::string& path, double* out) {
  if (!value.is_number())
    return Invalid(path, absl::StrCat("expected a number, got ", TypeName(value)));
  const double v = value.get<double>();
  if (!std::isfinite(v)) return Invalid(path, "must be finite");
  *out = v;
  return absl::OkStatus();
}

absl::Status ExpectInt(const json& value, const std::string& path, int* out) {
  if (!value.is_number()) {
    return Invalid(path, absl::StrCat("expected an integer, got ", TypeName(value)));
  }
  const double v = value.get<double>();
  if (!std::isfinite(v) || v != std::floor(v)) {
    return Invalid(path, absl::StrCat("expected an integer, got ", value.dump()));
  }
  if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max()) {
    return Invalid(path, absl::StrCat("integer out of range, got ", value.dump()));
  }
  *out = static_cast<int>(v);
  return absl::OkStatus();
}

absl::Status RangeError(const std::string& path, absl::string_view requirement, double value) {
  return Invalid(path, absl::StrCat("must be ", requirement, ", got ", value));
}

// ---------------------------------------------------------------------------
// FieldReader.

absl::StatusOr<FieldReader> FieldReader::Make(const json& value, std::string path) {
  if (!value.is_object()) {
    return Invalid(path.empty() ? std::string("top level") : path,
                   absl::StrCat("expected an object, got ", TypeName(value)));
  }
  return FieldReader(&value, std::move(path));
}

bool FieldReader::Has(const std::string& key) { return Get(key) != nullptr; }

const json* FieldReader::Get(const std::string& key) {
  auto it = object_->find(key);
  if (it == object_->end()) return nullptr;
  read_.insert(key);
  if (it->is_null()) return nullptr;
  return &*it;
}

absl::Status FieldReader::ReadDouble(const std::string& key, double* out) {
  const json* v = Get(key);
  if (v == nullptr) return absl::OkStatus();
  return ExpectDouble(*v, PathOf(key), out);
}

absl::Status FieldReader::ReadOptionalDouble(const std::string& key, std::optional<double>* out) {
  const json* v = Get(key);
  if (v == nullptr) return absl::OkStatus();
  double d = 0.0;
  if (absl::Status s = ExpectDouble(*v, PathOf(key), &d); !s.ok()) return s;
  *out = d;
  return absl::OkStatus();
}

absl::Status FieldReader::ReadInt(const std::string& key, int* out) {
  const json* v = Get(key);
  if (v == nullptr) return absl::OkStatus();
  return ExpectInt(*v, PathOf(key), out);
}

absl::Status FieldReader::ReadUint64(const std::string& key, uint64_t* out) {
  const json* v = Get(key);
  if (v == nullptr) return absl::OkStatus();
  if (v->is_number_unsigned()) {
    *out = v->get<uint64_t>();
    return absl::OkStatus();
  }
  if (v->is_number_integer() && v->get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(v->get<int64_t>());
    return absl::OkStatus();
  }
  return Invalid(PathOf(key), absl::StrCat("expected a non-negative integer, got ", v->dump()));
}

absl::Status FieldReader::ReadBool(const std::string& key, bool* out) {
  const json* v = Get(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) {
    return Invalid(PathOf(key), absl::StrCat("expected true or false, got ", TypeName(*v)));
  }
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status FieldReader::ReadString(const std::string& key, std::string* out) {
  const json* v = Get(key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_string()) {
    return Invalid(PathOf(key), absl::StrCat("expected a string, got ", TypeName(*v)));
  }
  *out = v->get<std::string>();
  return absl::OkStatus();
}

absl::Status FieldReader::RequireDouble(const std::string& key, double* out) {
  if (!Has(key)) return Invalid(PathOf(key), "required (a number)");
  return ReadDouble(key, out);
}

absl::Status FieldReader::RequireInt(const std::string& key, int* out) {
  if (!Has(key)) return Invalid(PathOf(key), "required (an integer)");
  return ReadInt(key, out);
}

absl::Status FieldReader::RequireString(const std::string& key, std::string* out) {
  if (!Has(key)) return Invalid(PathOf(key), "required (a string)");
  return ReadString(key, out);
}

std::vector<std::string> FieldReader::UnreadKeys() const {
  std::vector<std::string> keys;
  for (auto it = object_->begin(); it != object_->end(); ++it) {
    if (read_.count(it.key()) == 0) keys.push_back(it.key());
  }
  return keys;
}

absl::Status FieldReader::CheckNoUnknownKeys(const std::vector<std::string>& known) const {
  const std::vector<std::string> unread = UnreadKeys();
  if (unread.empty()) return absl::OkStatus();
  return Invalid(PathOf(unread.front()),
                 absl::StrCat("unknown key (known keys: ", absl::StrJoin(known, ", "), ")"));
}

// ---------------------------------------------------------------------------
// Models and parameters.

json JsonNumber(double value) {
  if (std::isfinite(value)) return value;
  if (std::isnan(value)) return "nan";
  return value > 0 ? "inf" : "-inf";
}

absl::Status NumberFromJson(const json& value, const std::string& path, double* out) {
  if (value.is_number()) {
    *out = value.get<double>();
    return absl::OkStatus();
  }
  if (value.is_string()) {
    const std::string& s = value.get_ref<const std::string&>();
    if (s == "inf" || s == "-inf" || s == "nan") {
      *out = s == "nan" ? std::numeric_limits<double>::quiet_NaN()
                        : (s == "inf" ? 1.0 : -1.0) * std::numeric_limits<double>::infinity();
      return absl::OkStatus();
    }
  }
  return Invalid(path, absl::StrCat("expected a number, got ", TypeName(value)));
}

namespace {

// A [a, b] pair or a single integer (meaning [a, a]), as torch accepts.
absl::Status ReadPair(FieldReader* r, const std::string& key, int* a, int* b) {
  const json* v = r->Get(key);
  if (v == nullptr) return absl::OkStatus();
  const std::string path = r->PathOf(key);
  if (v->is_number_integer()) {
    if (absl::Status s = ExpectInt(*v, path, a); !s.ok()) return s;
    *b = *a;
    return absl::OkStatus();
  }
  if (!v->is_array() || v->size() != 2) {
    return Invalid(path, absl::StrCat("expected an integer or a pair [h, w], got ", v->dump()));
  }
  if (absl::Status s = ExpectInt((*v)[0], IndexPath(path, 0), a); !s.ok()) return s;
  return ExpectInt((*v)[1], IndexPath(path, 1), b);
}

absl::StatusOr<LayerSpec> LayerFromJson(const json& value, const std::string& lpath) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, lpath);
  if (!r.ok()) return r.status();
  std::string type;
  if (absl::Status s = r->RequireString("type", &type); !s.ok()) return s;
  const LayerType* t = FindLayerType(type);
  if (t == nullptr) {
    return Invalid(JoinPath(lpath, "type"), absl::StrCat("unknown layer type \"", type,
                                                         "\" (expected ", KnownLayerTypes(), ")"));
  }
  LayerSpec l;
  l.kind = t->kind;
  switch (t->kind) {
    case LayerKind::kRelu:
    case LayerKind::kFlatten:
      if (absl::Status s = r->CheckNoUnknownKeys({"type"}); !s.ok()) return s;
      break;
    case LayerKind::kDense:
      if (absl::Status s = r->RequireInt("in", &l.in); !s.ok()) return s;
      if (absl::Status s = r->RequireInt("out", &l.out); !s.ok()) return s;
      if (l.in <= 0) return RangeError(JoinPath(lpath, "in"), "> 0", l.in);
      if (l.out <= 0) return RangeError(JoinPath(lpath, "out"), "> 0", l.out);
      if (absl::Status s = r->CheckNoUnknownKeys({"type", "in", "out"}); !s.ok()) return s;
      break;
    case LayerKind::kConv2d: {
      Conv2dParams& c = l.conv;
      if (absl::Status s = r->RequireInt("in_channels", &c.in_channels); !s.ok()) return s;
      if (absl::Status s = r->RequireInt("out_channels", &c.out_channels); !s.ok()) return s;
      if (!r->Has("kernel_size")) return Invalid(r->PathOf("kernel_size"), "required");
      if (absl::Status s = ReadPair(&*r, "kernel_size", &c.kernel_h, &c.kernel_w); !s.ok()) {
        return s;
      }
      if (absl::Status s = ReadPair(&*r, "stride", &c.stride_h, &c.stride_w); !s.ok()) return s;
      if (absl::Status s = ReadPair(&*r, "padding", &c.pad_h, &c.pad_w); !s.ok()) return s;
      int dilation_h = 1, dilation_w = 1;
      if (absl::Status s = ReadPair(&*r, "dilation", &dilation_h, &dilation_w); !s.ok()) return s;
      if (dilation_h != 1 || dilation_w != 1) {
        return Invalid(r->PathOf("dilation"), "only dilation 1 is supported");
      }
      if (absl::Status s = r->CheckNoUnknownKeys({"type", "in_channels", "out_channels",
                                                  "kernel_size", "stride", "padding", "dilation"});
          !s.ok()) {
        return s;
      }
      break;
    }
  }
  return l;
}

json LayerToJson(const LayerSpec& l) {
  switch (l.kind) {
    case LayerKind::kDense:
      return {{"type", "dense"}, {"in", l.in}, {"out", l.out}};
    case LayerKind::kConv2d: {
      const Conv2dParams& c = l.conv;
      return {{"type", "conv2d"},
              {"in_channels", c.in_channels},
              {"out_channels", c.out_channels},
              {"kernel_size", {c.kernel_h, c.kernel_w}},
              {"stride", {c.stride_h, c.stride_w}},
              {"padding", {c.pad_h, c.pad_w}}};
    }
    default:
      return {{"type", LayerKindName(l.kind)}};
  }
}

// Appends the numbers of a nested array (any depth) in row-major order.
absl::Status FlattenNumbers(const json& value, const std::string& path, std::vector<double>* out) {
  if (!value.is_array()) {
    double v = 0;
    if (absl::Status s = NumberFromJson(value, path, &v); !s.ok()) return s;
    out->push_back(v);
    return absl::OkStatus();
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (absl::Status s = FlattenNumbers(value[i], IndexPath(path, i), out); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ReadNumberArray(const json& value, const std::string& path, size_t expected,
                             double* out) {
  if (!value.is_array()) {
    return Invalid(
        path, absl::StrCat("expected an array of ", expected, " numbers, got ", TypeName(value)));
  }
  std::vector<double> values;
  if (absl::Status s = FlattenNumbers(value, path, &values); !s.ok()) return s;
  if (values.size() != expected) {
    return Invalid(path, absl::StrCat("expected ", expected, " numbers, got ", values.size()));
  }
  std::copy(values.begin(), values.end(), out);
  return absl::OkStatus();
}

// One weight row (output unit or channel o) in its natural shape: a list of
// `in` numbers for dense, C x kh x kw nested lists for conv2d.
json WeightRowToJson(const Layer& layer, const double* row) {
  json out = json::array();
  if (layer.spec().kind != LayerKind::kConv2d) {
    for (int i = 0; i < layer.weight_cols(); ++i) out.push_back(JsonNumber(row[i]));
    return out;
  }
  const Conv2dParams& c = layer.spec().conv;
  for (int ch = 0; ch < c.in_channels; ++ch) {
    json plane = json::array();
    for (int a = 0; a < c.kernel_h; ++a) {
      json line = json::array();
      for (int b = 0; b < c.kernel_w; ++b) {
        line.push_back(JsonNumber(row[(ch * c.kernel_h + a) * c.kernel_w + b]));
      }
      plane.push_back(std::move(line));
    }
    out.push_back(std::move(plane));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<LayerSpec>> LayersFromJson(const json& layers, const std::string& path) {
  if (!layers.is_array()) {
    return Invalid(path, absl::StrCat("expected an array of layers, got ", TypeName(layers)));
  }
  std::vector<LayerSpec> out;
  for (size_t i = 0; i < layers.size(); ++i) {
    absl::StatusOr<LayerSpec> l = LayerFromJson(layers[i], IndexPath(path, i));
    if (!l.ok()) return l.status();
    out.push_back(*l);
  }
  return out;
}

json LayersToJson(const std::vector<LayerSpec>& layers) {
  json out = json::array();
  for (const LayerSpec& l : layers) out.push_back(LayerToJson(l));
  return out;
}

absl::StatusOr<Shape> ShapeFromJson(const json& value, const std::string& path) {
  if (!value.is_array() || (value.size() != 1 && value.size() != 3)) {
    return Invalid(path, absl::StrCat("expected [D] or [C, H, W], got ", value.dump()));
  }
  Shape shape;
  for (size_t i = 0; i < value.size(); ++i) {
    int d = 0;
    if (absl::Status s = ExpectInt(value[i], IndexPath(path, i), &d); !s.ok()) return s;
    if (d <= 0) return RangeError(IndexPath(path, i), "> 0", d);
    shape.dims.push_back(d);
  }
  return shape;
}

json ModelSpecToJson(const ModelSpec& spec) { return LayersToJson(spec.layers); }

absl::StatusOr<ModelSpec> ModelSpecFromJson(const json& layers, const std::string& path) {
  absl::StatusOr<std::vector<LayerSpec>> l = LayersFromJson(layers, path);
  if (!l.ok()) return l.status();
  ModelSpec spec;
  spec.layers = *std::move(l);
  if (absl::Status s = spec.Validate(); !s.ok()) return Invalid(path, s.message());
  return spec;
}

json ModelToJson(const ModelSpec& spec) {
  json out = {{"layers", LayersToJson(spec.layers)}};
  if (!spec.input_shape.empty()) out["input_shape"] = spec.input_shape.dims;
  if (!spec.frozen.empty()) {
    out["frozen"] = LayersToJson(spec.frozen.layers);
    out["frozen_parameters"] =
        NetworkParametersToJson(spec.FrozenNetwork(), spec.frozen.parameters);
  }
  return out;
}

absl::Status ReadModelShapeAndFrozen(FieldReader* r, ModelSpec* spec) {
  if (const json* shape = r->Get("input_shape"); shape != nullptr) {
    absl::StatusOr<Shape> s = ShapeFromJson(*shape, r->PathOf("input_shape"));
    if (!s.ok()) return s.status();
    spec->input_shape = *s;
  }
  if (const json* frozen = r->Get("frozen"); frozen != nullptr) {
    absl::StatusOr<std::vector<LayerSpec>> l = LayersFromJson(*frozen, r->PathOf("frozen"));
    if (!l.ok()) return l.status();
    spec->frozen.layers = *std::move(l);
  }
  return absl::OkStatus();
}

absl::Status ReadFrozenParameters(const json& list, const std::string& path, ModelSpec* spec) {
  absl::StatusOr<Network> net = Network::Build(spec->frozen.layers, spec->InputShape());
  if (!net.ok()) return Invalid(path, absl::StrCat("frozen ", net.status().message()));
  absl::StatusOr<Vector> p = NetworkParametersFromJson(*net, list, path);
  if (!p.ok()) return p.status();
  spec->frozen.parameters = *std::move(p);
  return absl::OkStatus();
}

absl::StatusOr<ModelSpec> ModelFromJson(const json& value, const std::string& path) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, path);
  if (!r.ok()) return r.status();
  ModelSpec spec;
  const json* layers = r->Get("layers");
  if (layers == nullptr) return Invalid(r->PathOf("layers"), "required");
  absl::StatusOr<std::vector<LayerSpec>> l = LayersFromJson(*layers, r->PathOf("layers"));
  if (!l.ok()) return l.status();
  spec.layers = *std::move(l);
  if (absl::Status s = ReadModelShapeAndFrozen(&*r, &spec); !s.ok()) return s;
  if (!spec.frozen.empty()) {
    const json* params = r->Get("frozen_parameters");
    if (params == nullptr) return Invalid(r->PathOf("frozen_parameters"), "required");
    if (absl::Status s = ReadFrozenParameters(*params, r->PathOf("frozen_parameters"), &spec);
        !s.ok()) {
      return s;
    }
  }
  r->Get("describe");        // descriptive only
  r->Get("num_parameters");  // descriptive only
  if (absl::Status s = r->CheckNoUnknownKeys(
          {"layers", "input_shape", "frozen", "frozen_parameters", "describe", "num_parameters"});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = spec.Validate(); !s.ok()) return Invalid(path, s.message());
  return spec;
}

json NetworkParametersToJson(const Network& net, const Vector& theta) {
  json layers = json::array();
  for (size_t i = 0; i < net.size(); ++i) {
    const Layer& l = net.layer(i);
    if (!l.has_params()) continue;
    const double* p = theta.data() + net.param_offset(i);
    json weight = json::array();
    for (int o = 0; o < l.weight_rows(); ++o) {
      weight.push_back(WeightRowToJson(l, p + static_cast<Index>(o) * l.weight_cols()));
    }
    json bias = json::array();
    const Index nw = static_cast<Index>(l.weight_rows()) * l.weight_cols();
    for (int o = 0; o < l.weight_rows(); ++o) bias.push_back(JsonNumber(p[nw + o]));
    layers.push_back({{"weight", std::move(weight)}, {"bias", std::move(bias)}});
  }
  return layers;
}

absl::StatusOr<Vector> NetworkParametersFromJson(const Network& net, const json& layers,
                                                 const std::string& lpath) {
  std::vector<size_t> with_params;
  for (size_t i = 0; i < net.size(); ++i) {
    if (net.layer(i).has_params()) with_params.push_back(i);
  }
  if (!layers.is_array() || layers.size() != with_params.size()) {
    return Invalid(
        lpath,
        absl::StrCat("expected an array of ", with_params.size(), " layers with parameters, got ",
                     layers.is_array() ? std::to_string(layers.size()) : TypeName(layers)));
  }
  Vector theta(net.num_params());
  for (size_t k = 0; k < with_params.size(); ++k) {
    const Layer& l = net.layer(with_params[k]);
    const Index off = net.param_offset(with_params[k]);
    const std::string kpath = IndexPath(lpath, k);
    absl::StatusOr<FieldReader> lr = FieldReader::Make(layers[k], kpath);
    if (!lr.ok()) return lr.status();
    const json* weight = lr->Get("weight");
    const json* bias = lr->Get("bias");
    if (weight == nullptr) return Invalid(lr->PathOf("weight"), "required");
    if (bias == nullptr) return Invalid(lr->PathOf("bias"), "required");
    if (absl::Status s = lr->CheckNoUnknownKeys({"weight", "bias"}); !s.ok()) return s;
    const std::string wpath = lr->PathOf("weight");
    const int rows = l.weight_rows(), cols = l.weight_cols();
    if (!weight->is_array() || weight->size() != static_cast<size_t>(rows)) {
      return Invalid(wpath, absl::StrCat("expected ", rows, " rows of ", cols, " numbers"));
    }
    for (int o = 0; o < rows; ++o) {
      if (absl::Status s = ReadNumberArray((*weight)[o], IndexPath(wpath, o), cols,
                                           &theta[off + static_cast<Index>(o) * cols]);
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = ReadNumberArray(*bias, lr->PathOf("bias"), rows,
                                         &theta[off + static_cast<Index>(rows) * cols]);
        !s.ok()) {
      return s;
    }
  }
  return theta;
}

json ParametersToJson(const ModelSpec& spec, const Vector& theta) {
  return {{"layers", NetworkParametersToJson(spec.TrainedNetwork(), theta)}};
}

absl::StatusOr<Vector> ParametersFromJson(const ModelSpec& spec, const json& value,
                                          const std::string& path) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, path);
  if (!r.ok()) return r.status();
  const json* layers = r->Get("layers");
  const std::string lpath = r->PathOf("layers");
  if (layers == nullptr) return Invalid(lpath, "required (one entry per layer with parameters)");
  r->Get("frozen");  // the frozen prefix's parameters (ReadFrozenParameters)
  if (absl::Status s = r->CheckNoUnknownKeys({"layers", "frozen"}); !s.ok()) return s;
  absl::StatusOr<Vector> theta = NetworkParametersFromJson(spec.TrainedNetwork(), *layers, lpath);
  if (!theta.ok() && layers->is_array() && layers->size() != spec.Layout().size()) {
    return Invalid(lpath, absl::StrCat("expected an array of ", spec.Layout().size(),
                                       " layers with parameters (model ", spec.Describe(),
                                       "), got ", layers->size()));
  }
  return theta;
}

int ClassesForLoss(LossKind loss, int output_dim) {
  switch (loss) {
    case LossKind::kMse:
      return 0;
    case LossKind::kBinaryCrossEntropy:
    case LossKind::kHinge:
      return 2;
    case LossKind::kCrossEntropy:
      return output_dim;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// The training config.

namespace {

const std::vector<std::string> kTopKeys = {
    "name",       "description", "dataset",   "polynomial_degree", "model",        "loss",
    "batch_size", "epochs",      "optimizer", "clip_gamma",        "perturbation", "budgets",
    "seed",       "init",        "bound",     "fragment_size",     "removed_rows"};

absl::Status ParseGenerator(const json& value, const std::string& path, GeneratorConfig* g) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, path);
  if (!r.ok()) return r.status();
  if (absl::Status s = r->RequireString("type", &g->type); !s.ok()) return s;
  if (absl::Status s = r->RequireInt("n", &g->n); !s.ok()) return s;
  if (g->n < 2) return RangeError(r->PathOf("n"), ">= 2", g->n);
  if (absl::Status s = r->ReadUint64("seed", &g->seed); !s.ok()) return s;
  if (g->type == "moons") {
    if (absl::Status s = r->ReadDouble("noise", &g->noise); !s.ok()) return s;
    if (g->noise < 0) return RangeError(r->PathOf("noise"), ">= 0", g->noise);
    return r->CheckNoUnknownKeys({"type", "n", "seed", "noise"});
  }
  if (g->type == "blobs") {
    if (absl::Status s = r->ReadInt("dim", &g->dim); !s.ok()) return s;
    if (absl::Status s = r->ReadInt("classes", &g->classes); !s.ok()) return s;
    if (absl::Status s = r->ReadDouble("stddev", &g->stddev); !s.ok()) return s;
    if (absl::Status s = r->ReadDouble("center_box", &g->center_box); !s.ok()) return s;
    if (g->dim < 1) return RangeError(r->PathOf("dim"), ">= 1", g->dim);
    if (g->classes < 2) return RangeError(r->PathOf("classes"), ">= 2", g->classes);
    if (g->stddev < 0) return RangeError(r->PathOf("stddev"), ">= 0", g->stddev);
    if (g->center_box <= 0) return RangeError(r->PathOf("center_box"), "> 0", g->center_box);
    return r->CheckNoUnknownKeys({"type", "n", "seed", "dim", "classes", "stddev", "center_box"});
  }
  return Invalid(r->PathOf("type"),
                 absl::StrCat("unknown generator \"", g->type, "\" (expected moons or blobs)"));
}

absl::Status ParseDataset(const json& value, const std::string& base_dir, DatasetConfig* d) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, "dataset");
  if (!r.ok()) return r.status();
  const json* generator = r->Get("generator");
  if (absl::Status s = r->ReadString("csv", &d->csv); !s.ok()) return s;
  if (d->csv.empty() == (generator == nullptr)) {
    return Invalid("dataset", "give exactly one of \"csv\" (a file) or \"generator\"");
  }
  if (!d->csv.empty()) d->csv = ResolvePath(base_dir, d->csv);
  if (generator != nullptr) {
    d->generator.emplace();
    if (absl::Status s = ParseGenerator(*generator, "dataset.generator", &*d->generator); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = r->ReadInt("num_classes", &d->num_classes); !s.ok()) return s;
  if (r->Has("num_classes") && d->num_classes < 0) {
    return RangeError(r->PathOf("num_classes"), ">= 0", d->num_classes);
  }
  if (r->Has("num_classes") && d->num_classes == 1) {
    return Invalid(r->PathOf("num_classes"), "must be 0 (regression) or >= 2, got 1");
  }
  if (absl::Status s = r->ReadString("test_csv", &d->test_csv); !s.ok()) return s;
  if (absl::Status s = r->ReadDouble("test_fraction", &d->test_fraction); !s.ok()) return s;
  if (absl::Status s = r->ReadUint64("split_seed", &d->split_seed); !s.ok()) return s;
  if (d->test_fraction < 0 || d->test_fraction >= 1) {
    return RangeError(r->PathOf("test_fraction"), "in [0, 1)", d->test_fraction);
  }
  if (!d->test_csv.empty() && d->test_fraction > 0) {
    return Invalid("dataset", "give at most one of \"test_csv\" and \"test_fraction\"");
  }
  if (!d->test_csv.empty()) d->test_csv = ResolvePath(base_dir, d->test_csv);
  return r->CheckNoUnknownKeys(
      {"csv", "generator", "num_classes", "test_csv", "test_fraction", "split_seed"});
}

// {"onnx": FILE, "frozen_layers"?: K | "frozen_until"?: NODE, "input_shape"?}.
absl::Status ParseOnnxModel(FieldReader* r, ModelConfig* m) {
  if (absl::Status s = r->ReadString("onnx", &m->onnx_path); !s.ok()) return s;
  if (m->onnx_path.empty()) return Invalid("model.onnx", "must be a file name");
  for (const char* key : {"layers", "hidden", "frozen", "frozen_parameters"}) {
    if (r->Has(key)) {
      return Invalid(r->PathOf(key),
                     "not with model.onnx: the ONNX file holds the layers and their parameters "
                     "(choose the frozen prefix with frozen_layers or frozen_until)");
    }
  }
  if (r->Has("frozen_layers")) {
    int k = 0;
    if (absl::Status s = r->ReadInt("frozen_layers", &k); !s.ok()) return s;
    if (k < 0) return RangeError("model.frozen_layers", ">= 0", k);
    m->onnx_frozen_layers = k;
  }
  if (absl::Status s = r->ReadString("frozen_until", &m->onnx_frozen_until); !s.ok()) return s;
  if (m->onnx_frozen_layers.has_value() && !m->onnx_frozen_until.empty()) {
    return Invalid("model", "give at most one of \"frozen_layers\" and \"frozen_until\"");
  }
  if (const json* shape = r->Get("input_shape"); shape != nullptr) {
    absl::StatusOr<Shape> s = ShapeFromJson(*shape, "model.input_shape");
    if (!s.ok()) return s.status();
    m->onnx_input_shape = *s;
  }
  return r->CheckNoUnknownKeys({"onnx", "frozen_layers", "frozen_until", "input_shape"});
}

absl::Status ParseModel(const json& value, ModelConfig* m) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, "model");
  if (!r.ok()) return r.status();
  if (r->Has("onnx")) return ParseOnnxModel(&*r, m);
  const json* layers = r->Get("layers");
  const json* hidden = r->Get("hidden");
  if ((layers == nullptr) == (hidden == nullptr)) {
    return Invalid("model", "give exactly one of \"layers\", \"hidden\" or \"onnx\"");
  }
  if (absl::Status s = ReadModelShapeAndFrozen(&*r, &m->base); !s.ok()) return s;
  if (absl::Status s = r->ReadString("frozen_parameters", &m->frozen_parameters_path); !s.ok()) {
    return s;
  }
  if (!m->frozen_parameters_path.empty() && m->base.frozen.empty()) {
    return Invalid("model.frozen_parameters", "given without frozen layers (model.frozen)");
  }
  if (layers != nullptr) {
    absl::StatusOr<std::vector<LayerSpec>> l = LayersFromJson(*layers, "model.layers");
    if (!l.ok()) return l.status();
    ModelSpec spec = m->base;
    spec.layers = *std::move(l);
    // With a frozen prefix the check waits for its parameters (PrepareRun).
    if (spec.frozen.empty()) {
      if (absl::Status s = spec.Validate(); !s.ok()) return Invalid("model.layers", s.message());
    }
    m->layers = std::move(spec);
  } else {
    if (!hidden->is_array()) {
      return Invalid("model.hidden",
                     absl::StrCat("expected an array of widths, got ", TypeName(*hidden)));
    }
    for (size_t i = 0; i < hidden->size(); ++i) {
      int w = 0;
      const std::string p = IndexPath("model.hidden", i);
      if (absl::Status s = ExpectInt((*hidden)[i], p, &w); !s.ok()) return s;
      if (w <= 0) return RangeError(p, "> 0", w);
      m->hidden.push_back(w);
    }
  }
  return r->CheckNoUnknownKeys({"layers", "hidden", "input_shape", "frozen", "frozen_parameters"});
}

absl::Status ParseOptimizer(const json& value, OptimizerConfig* o) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, "optimizer");
  if (!r.ok()) return r.status();
  if (absl::Status s = r->RequireDouble("learning_rate", &o->learning_rate); !s.ok()) return s;
  if (absl::Status s = r->ReadDouble("lr_decay", &o->lr_decay); !s.ok()) return s;
  if (absl::Status s = r->ReadDouble("lr_min", &o->lr_min); !s.ok()) return s;
  if (absl::Status s = r->ReadDouble("l1", &o->l1); !s.ok()) return s;
  if (absl::Status s = r->ReadDouble("l2", &o->l2); !s.ok()) return s;
  if (absl::Status s = r->ReadDouble("momentum", &o->momentum); !s.ok()) return s;
  if (absl::Status s = r->ReadDouble("dampening", &o->dampening); !s.ok()) return s;
  if (absl::Status s = r->ReadBool("nesterov", &o->nesterov); !s.ok()) return s;
  if (absl::Status s = r->CheckNoUnknownKeys(
          {"learning_rate", "lr_decay", "lr_min", "l1", "l2", "momentum", "dampening", "nesterov"});
      !s.ok()) {
    return s;
  }
  // The rules themselves are the core's (OptimizerConfig::Validate), shared
  // with the server; its messages already name "optimizer.<key>".
  o->momentum_enabled = o->momentum > 0;
  return o->Validate();
}

absl::Status ParsePerturbation(const json& value, LossKind loss, PerturbationModel* p) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, "perturbation");
  if (!r.ok()) return r.status();
  std::string kind;
  if (absl::Status s = r->RequireString("kind", &kind); !s.ok()) return s;
  if (kind == "removal") {
    p->kind = PerturbationKind::kRemoval;
  } else if (kind == "substitution") {
    p->kind = PerturbationKind::kSubstitution;
  } else if (kind == "poisoning") {
    p->kind = PerturbationKind::kBoundedPoisoning;
  } else {
    return Invalid(r->PathOf("kind"), absl::StrCat("unknown kind \"", kind,
                                                   "\" (expected removal, substitution or "
                                                   "poisoning)"));
  }
  if (p->kind != PerturbationKind::kBoundedPoisoning) {
    for (const char* key : {"epsilon", "labels", "paired"}) {
      if (r->Has(key)) return Invalid(r->PathOf(key), "only for kind \"poisoning\"");
    }
    return r->CheckNoUnknownKeys({"kind"});
  }
  if (absl::Status s = r->ReadDouble("epsilon", &p->epsilon); !s.ok()) return s;
  if (p->epsilon < 0) return RangeError(r->PathOf("epsilon"), ">= 0", p->epsilon);
  if (absl::Status s = r->ReadBool("paired", &p->paired); !s.ok()) return s;
  if (const json* labels = r->Get("labels"); labels != nullptr) {
    absl::StatusOr<FieldReader> lr = FieldReader::Make(*labels, "perturbation.labels");
    if (!lr.ok()) return lr.status();
    bool flip = false;
    if (absl::Status s = lr->ReadBool("flip", &flip); !s.ok()) return s;
    const bool has_target = lr->Has("target_class");
    const bool has_nu = lr->Has("nu");
    if (IsClassification(loss)) {
      if (has_nu) return Invalid(lr->PathOf("nu"), "only for the mse loss (use flip)");
      if (has_target) {
        if (absl::Status s = lr->ReadInt("target_class", &p->label.target_class); !s.ok()) {
          return s;
        }
        if (p->label.target_class < 0) {
          return RangeError(lr->PathOf("target_class"), ">= 0", p->label.target_class);
        }
        if (lr->Has("flip") && !flip) {
          return Invalid(lr->PathOf("target_class"), "needs flip true (or flip left out)");
        }
        flip = true;
      }
      p->label.enabled = flip;
    } else {
      if (lr->Has("flip") || has_target) {
        return Invalid(lr->PathOf(lr->Has("flip") ? "flip" : "target_class"),
                       "only for classification losses (use nu for mse)");
      }
      if (!has_nu) return Invalid(lr->PathOf("nu"), "required for the mse loss");
      if (absl::Status s = lr->ReadDouble("nu", &p->label.nu); !s.ok()) return s;
      if (p->label.nu < 0) return RangeError(lr->PathOf("nu"), ">= 0", p->label.nu);
      p->label.enabled = true;
    }
    if (absl::Status s = lr->CheckNoUnknownKeys({"flip", "target_class", "nu"}); !s.ok()) return s;
  }
  if (p->epsilon == 0 && !p->label.enabled) {
    return Invalid("perturbation",
                   "kind \"poisoning\" needs epsilon > 0 or a label perturbation (labels)");
  }
  return r->CheckNoUnknownKeys({"kind", "epsilon", "labels", "paired"});
}

absl::Status ParseBudgets(const json& value, const TrainConfig& train, std::vector<Budget>* out) {
  const std::string path = "budgets";
  if (!value.is_array() || value.empty()) {
    return Invalid(path, "expected a non-empty array of budgets, e.g. [1, 2, 5]");
  }
  const PerturbationModel& p = train.perturbation;
  const bool poisoning = p.kind == PerturbationKind::kBoundedPoisoning;
  for (size_t i = 0; i < value.size(); ++i) {
    const std::string bpath = IndexPath(path, i);
    Budget b;
    if (value[i].is_object()) {
      if (!poisoning) {
        return Invalid(bpath,
                       "a {features, labels} budget is only for kind \"poisoning\"; "
                       "give a number");
      }
      absl::StatusOr<FieldReader> r = FieldReader::Make(value[i], bpath);
      if (!r.ok()) return r.status();
      if (absl::Status s = r->ReadInt("features", &b.n); !s.ok()) return s;
      if (absl::Status s = r->ReadInt("labels", &b.label_n); !s.ok()) return s;
      if (absl::Status s = r->CheckNoUnknownKeys({"features", "labels"}); !s.ok()) return s;
      if (b.n < 0) return RangeError(r->PathOf("features"), ">= 0", b.n);
      if (b.label_n < 0) return RangeError(r->PathOf("labels"), ">= 0", b.label_n);
      if (b.n > 0 && p.epsilon == 0) {
        return Invalid(r->PathOf("features"), "needs perturbation.epsilon > 0");
      }
      if (b.label_n > 0 && !p.label.enabled) {
        return Invalid(r->PathOf("labels"), "needs perturbation.labels");
      }
    } else {
      int n = 0;
      if (absl::Status s = ExpectInt(value[i], bpath, &n); !s.ok()) return s;
      if (n < 0) return RangeError(bpath, ">= 0", n);
      if (poisoning) {
        b.n = p.epsilon > 0 ? n : 0;
        b.label_n = p.label.enabled ? n : 0;
      } else {
        b.n = n;
      }
    }
    const int k = poisoning ? (p.paired ? std::max(b.n, b.label_n) : b.n + b.label_n) : b.n;
    if (!poisoning && k >= train.batch_size) {
      return Invalid(bpath, absl::StrCat(k, " must be < batch_size ", train.batch_size,
                                         " (a batch must keep at least one row)"));
    }
    if (poisoning && k > train.batch_size) {
      return Invalid(bpath, absl::StrCat("poisons ", k, " rows per batch, more than batch_size ",
                                         train.batch_size));
    }
    out->push_back(b);
  }
  return absl::OkStatus();
}

absl::Status ParseBound(const json& value, BoundOptions* options) {
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, "bound");
  if (!r.ok()) return r.status();
  std::string method = "ibp", product = "rump", conv = "rump", rounding = "nearest";
  if (absl::Status s = r->ReadString("method", &method); !s.ok()) return s;
  if (absl::Status s = r->ReadString("matmul", &product); !s.ok()) return s;
  if (absl::Status s = r->ReadString("conv_matmul", &conv); !s.ok()) return s;
  if (absl::Status s = r->ReadString("rounding", &rounding); !s.ok()) return s;
  absl::StatusOr<BoundMethod> bm = ParseBoundMethod(method);
  if (!bm.ok()) return Invalid(r->PathOf("method"), bm.status().message());
  absl::StatusOr<MatMulMethod> m = ParseMatMulMethod(product);
  if (!m.ok()) return Invalid(r->PathOf("matmul"), m.status().message());
  absl::StatusOr<MatMulMethod> cm = ParseMatMulMethod(conv);
  if (!cm.ok()) return Invalid(r->PathOf("conv_matmul"), cm.status().message());
  if (rounding != "nearest") {
    return Invalid(r->PathOf("rounding"),
                   absl::StrCat("unknown rounding mode \"", rounding, "\" (expected nearest)"));
  }
  options->method = *bm;
  options->interval.product = *m;
  options->interval.conv_product = *cm;
  options->interval.rounding = RoundingMode::kNearest;
  return r->CheckNoUnknownKeys({"method", "matmul", "conv_matmul", "rounding"});
}

}  // namespace

absl::StatusOr<RunConfig> ParseRunConfig(const json& value, const std::string& base_dir) {
  RunConfig c;
  c.json = value;
  absl::StatusOr<FieldReader> r = FieldReader::Make(value, "");
  if (!r.ok()) return r.status();
  // Unknown keys first: a typo at the top level is the most likely mistake.
  for (const std::string& key : r->UnreadKeys()) {
    if (std::find(kTopKeys.begin(), kTopKeys.end(), key) == kTopKeys.end()) {
      return Invalid(key,
                     absl::StrCat("unknown key (known keys: ", absl::StrJoin(kTopKeys, ", "), ")"));
    }
  }
  std::string ignored;
  if (absl::Status s = r->ReadString("name", &ignored); !s.ok()) return s;
  if (absl::Status s = r->ReadString("description", &ignored); !s.ok()) return s;

  std::string loss_name;
  if (absl::Status s = r->RequireString("loss", &loss_name); !s.ok()) return s;
  absl::StatusOr<LossKind> loss = ParseLossKind(loss_name);
  if (!loss.ok()) return Invalid("loss", loss.status().message());
  c.train.loss = *loss;

  const json* dataset = r->Get("dataset");
  if (dataset == nullptr) return Invalid("dataset", "required (a csv file or a generator)");
  if (absl::Status s = ParseDataset(*dataset, base_dir, &c.dataset); !s.ok()) return s;

  if (absl::Status s = r->ReadInt("polynomial_degree", &c.polynomial_degree); !s.ok()) return s;
  if (c.polynomial_degree < 1 || c.polynomial_degree > 10) {
    return RangeError("polynomial_degree", "in [1, 10]", c.polynomial_degree);
  }

  const json* model = r->Get("model");
  if (model == nullptr)
    return Invalid("model", "required ({\"layers\": [...]} or {\"hidden\": [...]})");
  if (absl::Status s = ParseModel(*model, &c.model); !s.ok()) return s;
  if (!c.model.frozen_parameters_path.empty()) {
    c.model.frozen_parameters_path = ResolvePath(base_dir, c.model.frozen_parameters_path);
  }
  if (!c.model.onnx_path.empty()) c.model.onnx_path = ResolvePath(base_dir, c.model.onnx_path);

  if (absl::Status s = r->RequireInt("batch_size", &c.train.batch_size); !s.ok()) return s;
  if (c.train.batch_size < 1) return RangeError("batch_size", ">= 1", c.train.batch_size);
  c.train.epochs = 1;
  if (absl::Status s = r->ReadInt("epochs", &c.train.epochs); !s.ok()) return s;
  if (c.train.epochs < 1) return RangeError("epochs", ">= 1", c.train.epochs);

  const json* optimizer = r->Get("optimizer");
  if (optimizer == nullptr) return Invalid("optimizer", "required ({\"learning_rate\": ...})");
  if (absl::Status s = ParseOptimizer(*optimizer, &c.train.optimizer); !s.ok()) return s;

  if (absl::Status s = r->ReadOptionalDouble("clip_gamma", &c.train.clip_gamma); !s.ok()) return s;
  if (c.train.clip_gamma.has_value() && *c.train.clip_gamma <= 0) {
    return RangeError("clip_gamma", "> 0 (or null for no clipping)", *c.train.clip_gamma);
  }

  const json* perturbation = r->Get("perturbation");
  if (perturbation == nullptr) {
    return Invalid("perturbation",
                   "required ({\"kind\": \"removal\" | \"substitution\" | "
                   "\"poisoning\", ...})");
  }
  if (absl::Status s = ParsePerturbation(*perturbation, c.train.loss, &c.train.perturbation);
      !s.ok()) {
    return s;
  }
  if (c.train.perturbation.kind == PerturbationKind::kSubstitution &&
      !c.train.clip_gamma.has_value()) {
    return Invalid("clip_gamma",
                   "required by perturbation kind \"substitution\" (Theorem 8 "
                   "bounds a replaced row's gradient by gamma)");
  }

  const json* budgets = r->Get("budgets");
  if (budgets == nullptr) return Invalid("budgets", "required, e.g. [1, 2, 5]");
  if (absl::Status s = ParseBudgets(*budgets, c.train, &c.train.budgets); !s.ok()) return s;

  if (absl::Status s = r->ReadUint64("seed", &c.seed); !s.ok()) return s;
  if (absl::Status s = r->ReadString("init", &c.init_path); !s.ok()) return s;
  if (!c.init_path.empty() && !c.model.onnx_path.empty()) {
    return Invalid("init", "not with model.onnx: the initial parameters are the ONNX file's");
  }
  if (!c.init_path.empty()) c.init_path = ResolvePath(base_dir, c.init_path);
  if (const json* bound = r->Get("bound"); bound != nullptr) {
    if (absl::Status s = ParseBound(*bound, &c.train.bounds); !s.ok()) return s;
  }
  if (absl::Status s = r->ReadInt("fragment_size", &c.train.fragment_size); !s.ok()) return s;
  if (c.train.fragment_size < 0) return RangeError("fragment_size", ">= 0", c.train.fragment_size);
  if (const json* removed = r->Get("removed_rows"); removed != nullptr) {
    // Checked against the training rows by the trainer (TrainConfig::Validate).
    if (!removed->is_array()) {
      return Invalid("removed_rows",
                     absl::StrCat("expected an array of row indices, got ", TypeName(*removed)));
    }
    for (size_t i = 0; i < removed->size(); ++i) {
      int row = 0;
      const std::string p = IndexPath("removed_rows", i);
      if (absl::Status s = ExpectInt((*removed)[i], p, &row); !s.ok()) return s;
      if (row < 0) return RangeError(p, ">= 0", row);
      c.train.removed_rows.push_back(row);
    }
  }
  if (absl::Status s = r->CheckNoUnknownKeys(kTopKeys); !s.ok()) return s;
  return c;
}

absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path) {
  absl::StatusOr<json> value = ReadJsonFile(path);
  if (!value.ok()) return value.status();
  const std::string base_dir = std::filesystem::path(path).parent_path().string();
  absl::StatusOr<RunConfig> config = ParseRunConfig(*value, base_dir);
  if (!config.ok()) return Prefixed(config.status(), path);
  config->source = path;
  return config;
}

// ---------------------------------------------------------------------------
// Preparing a run: data, model, initial parameters.

namespace {

absl::StatusOr<Dataset> LoadTrainData(const RunConfig& c, int num_classes, int threads) {
  if (c.dataset.generator.has_value()) {
    const GeneratorConfig& g = *c.dataset.generator;
    Dataset d = g.type == "moons"
                    ? MakeMoons(g.n, g.noise, g.seed)
                    : MakeBlobs(g.n, g.dim, g.classes, g.stddev, g.center_box, g.seed);
    if (c.train.loss == LossKind::kMse) {
      d.num_classes = 0;
    } else if (num_classes > 0 && d.num_classes != num_classes) {
      return Invalid("dataset.generator", absl::StrCat("makes ", d.num_classes, " classes but ",
                                                       LossKindName(c.train.loss),
                                                       " with this "
                                                       "model needs ",
                                                       num_classes));
    }
    return d;
  }
  CsvOptions options;
  options.num_classes = num_classes;
  options.threads = threads;
  absl::StatusOr<Dataset> d = ReadCsv(c.dataset.csv, options);
  if (!d.ok()) return Prefixed(d.status(), "dataset.csv");
  return d;
}

}  // namespace

absl::StatusOr<PreparedRun> PrepareRun(const RunConfig& c, int threads) {
  const std::string& src = c.source.empty() ? std::string("config") : c.source;
  auto fail = [&](const absl::Status& s) { return Prefixed(s, src); };
  const LossKind loss = c.train.loss;

  // How many classes the labels must have: -1 = infer from the data.
  int classes = -1;
  if (loss == LossKind::kCrossEntropy) {
    if (c.dataset.num_classes >= 2) {
      classes = c.dataset.num_classes;
    } else if (c.model.layers.has_value()) {
      classes = c.model.layers->OutputDim();
    }
    if (c.dataset.num_classes == 0) {
      return fail(Invalid("dataset.num_classes", "cross_entropy needs >= 2 classes, got 0"));
    }
  } else {
    classes = ClassesForLoss(loss, 1);
    if (c.dataset.num_classes >= 0 && c.dataset.num_classes != classes) {
      return fail(Invalid(
          "dataset.num_classes",
          absl::StrCat(LossKindName(loss), " needs ", classes, ", got ", c.dataset.num_classes)));
    }
  }

  PreparedRun run;
  absl::StatusOr<Dataset> train = LoadTrainData(c, classes, threads);
  if (!train.ok()) return fail(train.status());
  run.train_data = *std::move(train);
  if (loss == LossKind::kCrossEntropy && run.train_data.num_classes < 2) {
    return fail(Invalid("dataset",
                        "cross_entropy needs class labels 0..C-1; the labels are not "
                        "integers (set dataset.num_classes to check them)"));
  }
  if (absl::Status s = run.train_data.Validate(); !s.ok()) return fail(Prefixed(s, "dataset"));
  const int num_classes = run.train_data.num_classes;

  if (!c.dataset.test_csv.empty()) {
    CsvOptions options;
    options.num_classes = num_classes;
    options.threads = threads;
    absl::StatusOr<Dataset> test = ReadCsv(c.dataset.test_csv, options);
    if (!test.ok()) return fail(Prefixed(test.status(), "dataset.test_csv"));
    if (test->dim() != run.train_data.dim()) {
      return fail(Invalid("dataset.test_csv",
                          absl::StrCat("has ", test->dim(), " features, the training data ",
                                       run.train_data.dim())));
    }
    run.test_data = *std::move(test);
  } else if (c.dataset.test_fraction > 0) {
    Split split = TrainTestSplit(run.train_data, c.dataset.test_fraction, c.dataset.split_seed);
    run.train_data = std::move(split.train);
    if (split.test.size() > 0) run.test_data = std::move(split.test);
  }

  run.raw_dim = static_cast<int>(run.train_data.dim());
  if (c.polynomial_degree > 1) {
    run.train_data.x = PolynomialFeatures(run.train_data.x, c.polynomial_degree);
    if (run.test_data.has_value()) {
      run.test_data->x = PolynomialFeatures(run.test_data->x, c.polynomial_degree);
    }
  }
  const int dim = static_cast<int>(run.train_data.dim());

  // The model.
  const int outputs = loss == LossKind::kCrossEntropy ? num_classes : 1;
  TrainConfig& t = run.train;
  t = c.train;
  std::optional<json> init_json;
  if (!c.init_path.empty()) {
    absl::StatusOr<json> init = ReadJsonFile(c.init_path);
    if (!init.ok()) return fail(Prefixed(init.status(), "init"));
    init_json = *std::move(init);
  }
  ModelSpec base = c.model.base;
  if (!base.frozen.empty()) {
    // The frozen prefix's fixed parameters: model.frozen_parameters, else
    // the init file's "frozen" list.
    std::string source = c.model.frozen_parameters_path;
    std::optional<json> file;
    if (!source.empty()) {
      absl::StatusOr<json> f = ReadJsonFile(source);
      if (!f.ok()) return fail(Prefixed(f.status(), "model.frozen_parameters"));
      file = *std::move(f);
    } else if (init_json.has_value()) {
      source = c.init_path;
      file = init_json;
    }
    if (!file.has_value() || !file->is_object() || !file->contains("frozen")) {
      return fail(Invalid("model.frozen_parameters",
                          "required with model.frozen: a file whose \"frozen\" list holds the "
                          "frozen layers' parameters (or an init file with that list)"));
    }
    if (absl::Status s =
            ReadFrozenParameters((*file)["frozen"], absl::StrCat(source, ": frozen"), &base);
        !s.ok()) {
      return fail(s);
    }
  }
  std::optional<Vector> onnx_init;
  if (!c.model.onnx_path.empty()) {
#ifdef AGT_WITH_ONNX
    onnx::ImportOptions options;
    options.frozen_layers = c.model.onnx_frozen_layers;
    options.frozen_until = c.model.onnx_frozen_until;
    options.input_shape = c.model.onnx_input_shape;
    absl::StatusOr<onnx::ImportedModel> imported = onnx::ImportOnnxFile(c.model.onnx_path, options);
    if (!imported.ok()) return fail(Prefixed(imported.status(), "model.onnx"));
    t.model = imported->spec;
    onnx_init = std::move(imported->trained_parameters);
#else
    return fail(
        Invalid("model.onnx", "this agt was built without ONNX support (-DAGT_WITH_ONNX=OFF)"));
#endif
  } else if (c.model.layers.has_value()) {
    t.model = *c.model.layers;
    t.model.frozen = base.frozen;
    if (absl::Status s = t.model.Validate(); !s.ok()) return fail(Invalid("model", s.message()));
  } else {
    if (absl::Status s = base.Validate(); !s.ok() && !base.frozen.empty()) {
      // Only the prefix is checked here; the MLP is built on its output.
      const Shape in = base.InputShape();
      absl::StatusOr<Network> net = Network::Build(base.frozen.layers, in);
      if (!net.ok()) return fail(Invalid("model.frozen", net.status().message()));
    }
    const int features = base.frozen.empty() ? dim : static_cast<int>(base.FeatureShape().size());
    std::vector<int> widths = {features};
    widths.insert(widths.end(), c.model.hidden.begin(), c.model.hidden.end());
    widths.push_back(outputs);
    t.model = ModelSpec::Mlp(widths);
    t.model.input_shape = base.input_shape;
    t.model.frozen = base.frozen;
    if (absl::Status s = t.model.Validate(); !s.ok()) return fail(Invalid("model", s.message()));
  }
  if (t.model.InputDim() != dim) {
    return fail(Invalid(
        t.model.input_shape.empty() ? "model.layers[0].in" : "model.input_shape",
        absl::StrCat(t.model.InputDim(), " does not match the ", dim, " input features (",
                     run.raw_dim, " columns, polynomial_degree ", c.polynomial_degree, ")")));
  }
  if (t.model.OutputDim() != outputs) {
    return fail(Invalid(
        "model.layers",
        absl::StrCat("the last dense layer has out=", t.model.OutputDim(), "; ", LossKindName(loss),
                     " with ", num_classes, " classes needs ", outputs)));
  }

  const LabelPerturbation& label = t.perturbation.label;
  if (label.enabled && label.target_class >= num_classes && IsClassification(loss)) {
    return fail(
        Invalid("perturbation.labels.target_class",
                absl::StrCat("must be < the ", num_classes, " classes, got ", label.target_class)));
  }
  if (t.batch_size > run.train_data.size()) {
    return fail(Invalid("batch_size", absl::StrCat(t.batch_size, " exceeds the ",
                                                   run.train_data.size(), " training rows")));
  }

  if (init_json.has_value()) {
    absl::StatusOr<Vector> theta = ParametersFromJson(t.model, *init_json, "");
    if (!theta.ok())
      return fail(Prefixed(theta.status(), absl::StrCat("init (", c.init_path, ")")));
    run.init = *std::move(theta);
  } else if (onnx_init.has_value()) {
    run.init = *std::move(onnx_init);
  } else {
    run.init = InitParameters(t.model, c.seed);
  }

  if (absl::Status s = t.Validate(dim, num_classes, run.train_data.size()); !s.ok()) {
    return fail(s);
  }
  return run;
}

}  // namespace agt::cli
