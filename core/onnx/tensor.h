// Reading and writing onnx.TensorProto values, with every size checked
// before anything is allocated (internal to core/onnx).
//
// Reading accepts the typed fields (float_data, double_data, int32_data,
// int64_data) and raw_data (little-endian, the layout ONNX fixes); external
// data and segmented tensors are refused. Float tensors must be finite.
#ifndef AGT_CORE_ONNX_TENSOR_H_
#define AGT_CORE_ONNX_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "onnx/onnx_pb.h"

namespace agt::onnx {

// "float", "double", "int64", ... (or the number for unknown types).
std::string DataTypeName(int32_t data_type);

// A float32 or float64 tensor as doubles (float32 widened exactly). Fails
// with ResourceExhausted if it has more than max_values values or a dim above
// max_dim, InvalidArgument if the data does not match the dims or a value is
// NaN or Inf, Unimplemented for other element types or storage.
absl::Status ReadFloatTensor(const ::onnx::TensorProto& t, int64_t max_values, int64_t max_dim,
                             std::vector<int64_t>* dims, std::vector<double>* values);
// An int32 or int64 tensor of at most max_values values.
absl::Status ReadIntTensor(const ::onnx::TensorProto& t, int64_t max_values,
                           std::vector<int64_t>* dims, std::vector<int64_t>* values);

// Fills `t` with `values` of shape `dims`, as raw little-endian float64, or
// float32 (rounded to nearest) when as_float32.
void WriteFloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                      const double* values, bool as_float32, ::onnx::TensorProto* t);

}  // namespace agt::onnx

#endif  // AGT_CORE_ONNX_TENSOR_H_
