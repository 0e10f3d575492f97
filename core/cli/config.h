// The training config of `agt train` (schema documented in core/cli/CONFIG.md)
// and the JSON reading it is built on.
//
// Reading is strict: every key of an object must be known (a typo is an error,
// never silently ignored), every number must have the right type and range,
// and every error message names the JSON field path and the problem, e.g.
// "optimizer.learning_rate: must be > 0, got -1". Loading from a file prefixes
// messages with the file name.
//
// Errors are InvalidArgument (bad content) or NotFound (missing file); both
// mean "the user's input is wrong" and map to exit code 2 in the tool.
#ifndef AGT_CORE_CLI_CONFIG_H_
#define AGT_CORE_CLI_CONFIG_H_

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/common/types.h"
#include "core/data/dataset.h"
#include "core/model/model.h"
#include "core/train/train.h"

namespace agt::cli {

// Parses a whole file as JSON (ParseJson, json_io.h: nlohmann's value, read
// faster). NotFound if it cannot be opened; a syntax error is InvalidArgument
// naming the file, line and column.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path);
// Writes `value` (pretty-printed when indent >= 0; WriteJson, json_io.h:
// nlohmann's layout, doubles in their shortest round-trip digits) atomically
// enough for a CLI: to a temporary file next to `path`, then renamed.
// threads: WriteJson's (0 = one per core).
absl::Status WriteJsonFile(const nlohmann::json& value, const std::string& path, int indent = 1,
                           int threads = 1);

// Joins a field path: JoinPath("optimizer", "lr") = "optimizer.lr",
// JoinPath("", "lr") = "lr".
std::string JoinPath(absl::string_view parent, absl::string_view key);
// "budgets" + 2 = "budgets[2]".
std::string IndexPath(absl::string_view parent, size_t index);

// Reads the fields of one JSON object and remembers which keys were read, so
// that unknown keys can be reported. A null value counts as absent. Optional
// readers leave *out unchanged when the key is absent; Require* readers fail.
// The object must outlive the reader.
class FieldReader {
 public:
  // Fails unless `value` is an object.
  static absl::StatusOr<FieldReader> Make(const nlohmann::json& value, std::string path);

  const std::string& path() const { return path_; }
  std::string PathOf(absl::string_view key) const { return JoinPath(path_, key); }
  // True iff the key is present and not null. Marks it read.
  bool Has(const std::string& key);
  // The value (marks it read), or nullptr when absent or null.
  const nlohmann::json* Get(const std::string& key);

  absl::Status ReadDouble(const std::string& key, double* out);
  absl::Status ReadOptionalDouble(const std::string& key, std::optional<double>* out);
  absl::Status ReadInt(const std::string& key, int* out);
  absl::Status ReadUint64(const std::string& key, uint64_t* out);
  absl::Status ReadBool(const std::string& key, bool* out);
  absl::Status ReadString(const std::string& key, std::string* out);
  absl::Status RequireDouble(const std::string& key, double* out);
  absl::Status RequireInt(const std::string& key, int* out);
  absl::Status RequireString(const std::string& key, std::string* out);

  // Keys present but never read, in the object's order.
  std::vector<std::string> UnreadKeys() const;
  // InvalidArgument naming the first unread key, e.g.
  // "optimizer.learnig_rate: unknown key (known keys: learning_rate, ...)".
  absl::Status CheckNoUnknownKeys(const std::vector<std::string>& known) const;

 private:
  FieldReader(const nlohmann::json* object, std::string path)
      : object_(object), path_(std::move(path)) {}

  const nlohmann::json* object_;
  std::string path_;
  std::set<std::string> read_;
};

// Value checks on JSON values, with the field path in the message.
absl::Status ExpectDouble(const nlohmann::json& value, const std::string& path, double* out);
absl::Status ExpectInt(const nlohmann::json& value, const std::string& path, int* out);
// "<path>: must be > 0, got -1" style range errors.
absl::Status RangeError(const std::string& path, absl::string_view requirement, double value);

// Where the training rows come from: a CSV file or a generator.
struct GeneratorConfig {
  std::string type;  // "moons" or "blobs"
  int n = 0;
  double noise = 0.1;        // moons: Gaussian noise stddev
  int dim = 2;               // blobs
  int classes = 3;           // blobs
  double stddev = 1.0;       // blobs
  double center_box = 10.0;  // blobs
  uint64_t seed = 0;
};

struct DatasetConfig {
  std::string csv;  // resolved path (relative paths are taken from the config's folder)
  std::optional<GeneratorConfig> generator;
  // Classes of the labels; -1 = from the loss (binary losses: 2, mse: 0) or,
  // for cross_entropy, from the model's output width or else the labels.
  int num_classes = -1;
  std::string test_csv;        // resolved path, or empty
  double test_fraction = 0.0;  // used when test_csv is empty
  uint64_t split_seed = 0;
};

// The model: explicit layers, or hidden widths of a ReLU MLP whose input and
// output widths come from the data and the loss.
struct ModelConfig {
  std::optional<ModelSpec> layers;
  std::vector<int> hidden;
  // input_shape and frozen layers (without their parameters), for either form.
  ModelSpec base;
  std::string frozen_parameters_path;  // resolved, or empty
  // Or a network from an ONNX file (torch.onnx.export; core/onnx/README.md):
  // its layers, its frozen prefix (frozen_layers or frozen_until) with fixed
  // parameters, and the trained layers' initial parameters. onnx_input_shape
  // replaces symbolic input dims.
  std::string onnx_path;  // resolved, or empty
  std::optional<int> onnx_frozen_layers;
  std::string onnx_frozen_until;
  Shape onnx_input_shape;
};

// A parsed `agt train` config. Paths are resolved; data-dependent checks
// (widths, classes, batch size against rows) happen in PrepareRun.
struct RunConfig {
  std::string source;   // the file name used in messages
  nlohmann::json json;  // the config as read
  DatasetConfig dataset;
  int polynomial_degree = 1;
  ModelConfig model;
  // Everything but `model` (and `threads`, a command-line option).
  TrainConfig train;
  uint64_t seed = 0;
  std::string init_path;  // resolved, or empty: InitParameters(model, seed)
};

// Parses a config object; relative paths are resolved against base_dir.
// Messages name the field path but not the file.
absl::StatusOr<RunConfig> ParseRunConfig(const nlohmann::json& json, const std::string& base_dir);
// Reads and parses a config file; messages start with the file name.
absl::StatusOr<RunConfig> LoadRunConfig(const std::string& path);

// A config with its data loaded, features expanded and model resolved: ready
// to hand to Trainer::Create.
struct PreparedRun {
  TrainConfig train;  // complete, validated against the data
  Dataset train_data;
  std::optional<Dataset> test_data;
  Vector init;
  int raw_dim = 0;  // features before the polynomial expansion
};

// Loads the data, applies the polynomial expansion, resolves the model and
// the initial parameters, and validates everything against the data.
// Messages start with config.source and name the field. threads: the CSVs'
// parsing threads (CsvOptions::threads; the same data for every count).
absl::StatusOr<PreparedRun> PrepareRun(const RunConfig& config, int threads = 1);

// A double as JSON: a number when finite, else the string "inf", "-inf" or
// "nan" (JSON has no such numbers; bounds of a diverged training can be
// infinite). NumberFromJson reads both forms.
nlohmann::json JsonNumber(double value);
absl::Status NumberFromJson(const nlohmann::json& value, const std::string& path, double* out);

// Model layers to and from the JSON layout [{"type": "dense", "in": I,
// "out": O}, {"type": "relu"}, ...] of case.json and of the config.
nlohmann::json ModelSpecToJson(const ModelSpec& spec);
absl::StatusOr<ModelSpec> ModelSpecFromJson(const nlohmann::json& layers, const std::string& path);

// Flat parameters to and from the goldens' init.json layout
// {"layers": [{"weight": [[...] x out], "bias": [... out]}, ...]}; values
// written with JsonNumber.
nlohmann::json ParametersToJson(const ModelSpec& spec, const Vector& theta);
// The same for any network: the list of {"weight", "bias"} of its layers with
// parameters; conv2d weights nested O x C x kh x kw (torch's shape), which
// the reader also accepts flat per output channel.
nlohmann::json NetworkParametersToJson(const Network& net, const Vector& theta);
absl::StatusOr<Vector> NetworkParametersFromJson(const Network& net, const nlohmann::json& layers,
                                                 const std::string& path);

// Layers of any registered type (layers/registry.h) to and from case.json's
// layout: {"type": "dense", "in", "out"}, {"type": "conv2d", "in_channels",
// "out_channels", "kernel_size", "stride" (default 1), "padding" (default
// 0)}, {"type": "relu"}, {"type": "flatten"}.
absl::StatusOr<std::vector<LayerSpec>> LayersFromJson(const nlohmann::json& layers,
                                                      const std::string& path);
nlohmann::json LayersToJson(const std::vector<LayerSpec>& layers);
// [D] or [C, H, W].
absl::StatusOr<Shape> ShapeFromJson(const nlohmann::json& value, const std::string& path);
// Reads the optional "input_shape" and "frozen" (layers) keys of an object.
absl::Status ReadModelShapeAndFrozen(FieldReader* reader, ModelSpec* spec);
// Reads the frozen prefix's parameters (init.json layout list) into spec.
absl::Status ReadFrozenParameters(const nlohmann::json& list, const std::string& path,
                                  ModelSpec* spec);
// A whole model as one object: {"layers", "input_shape"?, "frozen"?,
// "frozen_parameters"?} (what results files store), validated.
nlohmann::json ModelToJson(const ModelSpec& spec);
absl::StatusOr<ModelSpec> ModelFromJson(const nlohmann::json& value, const std::string& path);
absl::StatusOr<Vector> ParametersFromJson(const ModelSpec& spec, const nlohmann::json& value,
                                          const std::string& path);

// The number of classes a loss implies for a model with `output_dim` outputs:
// 0 for mse, 2 for binary losses, output_dim for cross_entropy.
int ClassesForLoss(LossKind loss, int output_dim);

}  // namespace agt::cli

#endif  // AGT_CORE_CLI_CONFIG_H_
