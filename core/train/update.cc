#include "core/train/update.h"

#include <algorithm>

namespace agt {
namespace {

void L1Step(double s, Vector* theta) {
  for (Index i = 0; i < theta->size(); ++i) {
    const double v = (*theta)[i];
    (*theta)[i] = v - s * static_cast<double>((v > 0) - (v < 0));
  }
}

}  // namespace

void ClampInPlace(Matrix* m, double gamma) { *m = m->cwiseMax(-gamma).cwiseMin(gamma); }

void ApplyNominalUpdate(const OptimizerConfig& opt, int64_t step, const Vector& direction,
                        Vector* theta, Vector* velocity) {
  const double lr = opt.LearningRate(step);
  Vector g = direction;
  if (opt.l2 > 0.0) g += opt.l2 * *theta;
  if (opt.l1 > 0.0) L1Step(lr * opt.l1, theta);
  if (opt.momentum_enabled) {
    if (velocity->size() == 0) {
      *velocity = g;
    } else {
      *velocity = opt.momentum * *velocity + (1.0 - opt.dampening) * g;
    }
    if (opt.nesterov) {
      g += opt.momentum * *velocity;
    } else {
      g = *velocity;
    }
  }
  *theta -= lr * g;
}

void ApplyBoxUpdate(const OptimizerConfig& opt, int64_t step, const Vector& direction_lower,
                    const Vector& direction_upper, ParameterBox* box, Vector* velocity_lower,
                    Vector* velocity_upper) {
  const double lr = opt.LearningRate(step);
  // g_lo bounds the direction that moves the upper end, g_hi the lower end:
  // theta - lr (g + l2 theta) is increasing in theta while lr * l2 < 1.
  Vector g_lo = direction_lower;
  Vector g_hi = direction_upper;
  if (opt.l2 > 0.0) {
    g_lo += opt.l2 * box->upper;
    g_hi += opt.l2 * box->lower;
  }
  if (opt.l1 > 0.0) {
    // theta - s sign(theta) over [l, u]; across zero the image is
    // [min(l + s, -s), max(u - s, s)].
    const double s = lr * opt.l1;
    for (Index i = 0; i < box->size(); ++i) {
      const double l = box->lower[i], u = box->upper[i];
      if (l <= 0.0 && u >= 0.0) {
        box->lower[i] = std::min(l + s, -s);
        box->upper[i] = std::max(u - s, s);
      } else {
        box->lower[i] = l - s * static_cast<double>((l > 0) - (l < 0));
        box->upper[i] = u - s * static_cast<double>((u > 0) - (u < 0));
      }
    }
  }
  if (opt.momentum_enabled) {
    // The reference's rule: momentum on each bound separately (not established as sound).
    if (velocity_lower->size() == 0) {
      *velocity_lower = g_lo;
      *velocity_upper = g_hi;
    } else {
      *velocity_lower = opt.momentum * *velocity_lower + (1.0 - opt.dampening) * g_lo;
      *velocity_upper = opt.momentum * *velocity_upper + (1.0 - opt.dampening) * g_hi;
    }
    if (opt.nesterov) {
      g_lo += opt.momentum * *velocity_lower;
      g_hi += opt.momentum * *velocity_upper;
    } else {
      g_lo = *velocity_lower;
      g_hi = *velocity_upper;
    }
  }
  box->lower -= lr * g_hi;
  box->upper -= lr * g_lo;
}

}  // namespace agt
