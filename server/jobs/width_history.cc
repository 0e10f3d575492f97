#include "server/jobs/width_history.h"

#include <algorithm>
#include <utility>

namespace agt::server {

WidthHistory::WidthHistory(int max_points)
    : max_points_(std::max(2, max_points + max_points % 2)) {}

void WidthHistory::Restore(WidthHistoryRecord stored, int64_t last_iteration) {
  record_ = std::move(stored);
  if (record_.stride < 1) record_.stride = 1;
  std::erase_if(record_.points,
                [&](const WidthPointRecord& p) { return p.iteration > last_iteration; });
  // A history stored under a larger limit (or a corrupt one) is brought
  // within this one.
  while (static_cast<int>(record_.points.size()) > max_points_) Decimate();
  ++version_;
}

bool WidthHistory::Due(int64_t iteration) const {
  return iteration >= 1 && (iteration - 1) % record_.stride == 0;
}

void WidthHistory::Decimate() {
  std::vector<WidthPointRecord>& points = record_.points;
  size_t kept = 0;
  for (size_t i = 0; i < points.size(); i += 2, ++kept) {
    if (kept != i) points[kept] = std::move(points[i]);  // never a self-move
  }
  points.resize(kept);
  record_.stride *= 2;
}

void WidthHistory::Append(const WidthPointRecord& point) {
  record_.points.push_back(point);
  ++version_;
}

void WidthHistory::Offer(const WidthPointRecord& point) {
  if (!record_.points.empty() && point.iteration <= record_.points.back().iteration) return;
  if (!Due(point.iteration)) return;
  if (static_cast<int>(record_.points.size()) >= max_points_) {
    Decimate();
    // The dropped points were the odd ones of the old grid; this point is
    // on the new grid iff it is due at the doubled stride.
    if (!Due(point.iteration)) {
      ++version_;
      return;
    }
  }
  Append(point);
}

void WidthHistory::Finish(const WidthPointRecord& last) {
  if (!record_.points.empty() && record_.points.back().iteration >= last.iteration) return;
  if (static_cast<int>(record_.points.size()) >= max_points_) Decimate();
  Append(last);
}

}  // namespace agt::server
