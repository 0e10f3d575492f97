// Helpers of the ONNX tests: building ModelProtos by hand, reading files,
// running the test-only Python scripts (torch.onnx.export, onnx.checker)
// once per test binary.
#ifndef AGT_TESTS_ONNX_ONNX_TEST_UTIL_H_
#define AGT_TESTS_ONNX_ONNX_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/common/types.h"
#include "onnx/onnx_pb.h"

namespace agt::onnx::test {

namespace fs = std::filesystem;
using nlohmann::json;

inline std::string ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// Runs a shell command; its exit status (-1 if it did not exit).
inline int RunCommand(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline fs::path ScratchDir(const std::string& name) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("agt_onnx_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

// Rows of numbers as a Matrix.
inline Matrix ToMatrix(const json& rows) {
  Matrix m(rows.size(), rows.empty() ? 0 : rows[0].size());
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < rows[r].size(); ++c) m(r, c) = rows[r][c].get<double>();
  }
  return m;
}

inline json ToJson(const Matrix& m) {
  json rows = json::array();
  for (Index r = 0; r < m.rows(); ++r) {
    json row = json::array();
    for (Index c = 0; c < m.cols(); ++c) row.push_back(m(r, c));
    rows.push_back(row);
  }
  return rows;
}

// The torch-made files of make_torch_models.py, made once per process.
// `skip` says why there are none (torch or onnx missing).
struct TorchCases {
  fs::path dir;
  json cases;
  std::string skip;
};

// Removes the files at exit.
struct TorchCasesOwner {
  TorchCases cases;
  ~TorchCasesOwner() {
    std::error_code ignored;
    fs::remove_all(cases.dir, ignored);
  }
};

inline const TorchCases& GetTorchCases() {
  static TorchCasesOwner owner;
  static const TorchCases* cases = [] {
    TorchCases* c = &owner.cases;
    c->dir = ScratchDir("torch");
    const std::string cmd = std::string(AGT_TEST_PYTHON) + " " + AGT_ONNX_TEST_DIR +
                            "/make_torch_models.py '" + c->dir.string() + "' > '" +
                            (c->dir / "log.txt").string() + "' 2>&1";
    const int rc = RunCommand(cmd);
    if (rc == 3) {
      c->skip = "python3-torch / python3-onnx are not installed (" + std::string(AGT_TEST_PYTHON) +
                " cannot import torch and onnx): " + ReadBytes(c->dir / "log.txt");
    } else if (rc != 0) {
      ADD_FAILURE() << "make_torch_models.py failed (" << rc << "):\n"
                    << ReadBytes(c->dir / "log.txt");
      c->skip = "make_torch_models.py failed";
    } else {
      std::ifstream in(c->dir / "cases.json");
      c->cases = json::parse(in);
    }
    return c;
  }();
  return *cases;
}

// Whether AGT_TEST_PYTHON can import onnx and numpy (for check_export.py).
inline bool PythonOnnxAvailable() {
  static const bool ok =
      RunCommand(std::string(AGT_TEST_PYTHON) + " -c 'import onnx, numpy' > /dev/null 2>&1") == 0;
  return ok;
}

// Builds a ModelProto by hand: opset 13, one input "x" of dims (-1 =
// symbolic), one output named by Output().
class ModelBuilder {
 public:
  explicit ModelBuilder(const std::vector<int64_t>& input_dims,
                        int32_t elem = ::onnx::TensorProto::DOUBLE) {
    model_.set_ir_version(7);
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(13);
    auto* in = model_.mutable_graph()->add_input();
    in->set_name("x");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem);
    for (int64_t d : input_dims) {
      auto* dim = tt->mutable_shape()->add_dim();
      if (d < 0) {
        dim->set_dim_param("N");
      } else {
        dim->set_dim_value(d);
      }
    }
  }

  ::onnx::NodeProto* Node(const std::string& op, const std::vector<std::string>& inputs,
                          const std::string& output, const std::string& name = "") {
    auto* n = model_.mutable_graph()->add_node();
    n->set_op_type(op);
    n->set_name(name.empty() ? "/" + op + "_" + std::to_string(model_.graph().node_size()) : name);
    for (const std::string& i : inputs) n->add_input(i);
    n->add_output(output);
    return n;
  }

  // A float64 (or float32) initializer in raw_data, or in the typed field.
  ::onnx::TensorProto* Init(const std::string& name, const std::vector<int64_t>& dims,
                            const std::vector<double>& values, bool float32 = false,
                            bool typed = false) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    for (int64_t d : dims) t->add_dims(d);
    t->set_data_type(float32 ? ::onnx::TensorProto::FLOAT : ::onnx::TensorProto::DOUBLE);
    for (double v : values) {
      if (typed && float32) {
        t->add_float_data(static_cast<float>(v));
      } else if (typed) {
        t->add_double_data(v);
      } else if (float32) {
        const float f = static_cast<float>(v);
        t->mutable_raw_data()->append(reinterpret_cast<const char*>(&f), sizeof f);
      } else {
        t->mutable_raw_data()->append(reinterpret_cast<const char*>(&v), sizeof v);
      }
    }
    return t;
  }

  ::onnx::TensorProto* IntInit(const std::string& name, const std::vector<int64_t>& values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->add_dims(static_cast<int64_t>(values.size()));
    t->set_data_type(::onnx::TensorProto::INT64);
    for (int64_t v : values) t->add_int64_data(v);
    return t;
  }

  void Output(const std::string& name) { model_.mutable_graph()->add_output()->set_name(name); }

  static void SetInt(::onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void SetFloat(::onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void SetInts(::onnx::NodeProto* n, const std::string& name,
                      const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void SetString(::onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(::onnx::AttributeProto::STRING);
    a->set_s(v);
  }

  ::onnx::ModelProto& model() { return model_; }
  std::string Bytes() const { return model_.SerializeAsString(); }

 private:
  ::onnx::ModelProto model_;
};

// 0.1, 0.2, ... (distinct values, so that a wrong layout shows).
inline std::vector<double> Ramp(size_t n, double scale = 0.1, double offset = 0.0) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = offset + scale * static_cast<double>(i + 1);
  return v;
}

}  // namespace agt::onnx::test

#endif  // AGT_TESTS_ONNX_ONNX_TEST_UTIL_H_
