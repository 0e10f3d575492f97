// Shape and storage conventions shared by the whole core, stated once.
//
// - Every quantity is float64.
// - A batch of inputs is a Matrix with one row per sample (N x features).
// - Matrices are row-major, so a sample's row, and a per-sample gradient row,
//   are contiguous in memory.
// - The parameters of a model are one flat Vector; see model/model.h for the
//   layout (dense layers in order, each weight O x I row-major, then bias O).
#ifndef AGT_CORE_COMMON_TYPES_H_
#define AGT_CORE_COMMON_TYPES_H_

#include <Eigen/Core>
#include <cstdint>

namespace agt {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXd;
using Index = Eigen::Index;

}  // namespace agt

#endif  // AGT_CORE_COMMON_TYPES_H_
