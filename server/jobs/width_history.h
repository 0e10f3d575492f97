// A job's bounded per-iteration history of the nominal loss and the total
// bound width per budget, kept by the job runner while it trains and stored
// with the job's progress and checkpoint writes (Store::SaveCheckpoint,
// UpdateJobProgress, CompleteJob), served by GetTrainingHistory.
//
// Contract: at most max_points points, evenly spread over the whole run.
// Iteration i is recorded when (i - 1) % stride == 0, starting with stride 1;
// when a due point finds the history full, every other point is dropped
// (those left are exactly the points of stride 2 * stride) and the stride
// doubles, so the kept iterations are always 1, 1 + stride, 1 + 2 stride, ...
// Finish() adds the last iteration if the grid missed it. The history after
// iteration i depends only on the points offered up to i, so a resumed job
// (Restore to its checkpoint's step) goes on as if it had not stopped,
// except that points written after that checkpoint may have made the stride
// coarser.
//
// Thread-safety: none (one job's worker owns it).
#ifndef AGT_SERVER_JOBS_WIDTH_HISTORY_H_
#define AGT_SERVER_JOBS_WIDTH_HISTORY_H_

#include <cstddef>
#include <cstdint>

#include "server/store/store.h"

namespace agt::server {

// The most points one job's history holds (a few tens of KiB per job: 1024 x
// (3 + budgets) doubles).
inline constexpr int kMaxHistoryPoints = 1024;

class WidthHistory {
 public:
  // max_points: even and >= 2 (smaller or odd values are raised to that).
  explicit WidthHistory(int max_points = kMaxHistoryPoints);

  // Continues a stored history: keeps its stride and its points up to
  // `last_iteration` (the checkpoint the job resumes from; later points
  // were recorded by a run whose steps are done again).
  void Restore(WidthHistoryRecord stored, int64_t last_iteration);

  // Offers the state after a step; recorded if its iteration is due.
  // Iterations offered must increase.
  void Offer(const WidthPointRecord& point);
  // The job finished at `last`: recorded if it is not already the last point.
  void Finish(const WidthPointRecord& last);

  const WidthHistoryRecord& record() const { return record_; }
  int max_points() const { return max_points_; }
  // Bumped on every change, so a writer can skip an unchanged history.
  int64_t version() const { return version_; }

 private:
  bool Due(int64_t iteration) const;
  // Keeps every other point and doubles the stride.
  void Decimate();
  void Append(const WidthPointRecord& point);

  int max_points_;
  WidthHistoryRecord record_;
  int64_t version_ = 0;
};

}  // namespace agt::server

#endif  // AGT_SERVER_JOBS_WIDTH_HISTORY_H_
