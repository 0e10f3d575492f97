// Benchmark of the files around a training run: what `agt golden` reads
// (train.csv, test.csv, init.json of a case directory) and what it writes (a
// results JSON), so that the process outside the training steps can be timed
// on its own (issue 20). Every figure is the best of --repeats runs.
//
// usage: agt_io_bench CASE_DIR [--results R.json] [--repeats N]
//   CASE_DIR   a directory in the goldens' format (bench/make_perf_case.py
//              writes issue 20's perf case)
//   R.json     a results file (`agt golden CASE_DIR --out R.json`): it is read
//              once, then written with WriteJsonFile and, as the in-run
//              baseline, with nlohmann's dump() and an ofstream (what
//              WriteJsonFile did before).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "core/cli/config.h"
#include "core/data/dataset.h"

namespace {

using Clock = std::chrono::steady_clock;

// Best wall time of `repeats` calls of `f`, in seconds; exits on failure.
double Best(int repeats, const std::function<bool()>& f) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    if (!f()) std::exit(1);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - start).count());
  }
  return best;
}

bool Report(const absl::Status& s) {
  if (!s.ok()) std::fprintf(stderr, "agt_io_bench: %s\n", std::string(s.message()).c_str());
  return s.ok();
}

void Print(const char* what, double seconds, double bytes) {
  std::printf("%-44s %9.4f s  %7.1f MB/s\n", what, seconds, bytes / seconds / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir, results;
  int repeats = 5;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--results") && i + 1 < argc) {
      results = argv[++i];
    } else if (!std::strcmp(argv[i], "--repeats") && i + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++i]));
    } else if (argv[i][0] != '-' && dir.empty()) {
      dir = argv[i];
    } else {
      std::printf("usage: agt_io_bench CASE_DIR [--results R.json] [--repeats N]\n");
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  if (dir.empty()) {
    std::printf("usage: agt_io_bench CASE_DIR [--results R.json] [--repeats N]\n");
    return 2;
  }
  namespace fs = std::filesystem;
  // One thread, then one per core (CsvOptions::threads, WriteJson's threads:
  // the same values and bytes).
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const char* file : {"train.csv", "test.csv"}) {
    const std::string path = (fs::path(dir) / file).string();
    for (int threads : {1, cores}) {
      if (threads == cores && cores == 1) break;
      agt::CsvOptions options;
      options.threads = threads;
      const double t = Best(repeats, [&] {
        absl::StatusOr<agt::Dataset> d = agt::ReadCsv(path, options);
        return Report(d.status());
      });
      const std::string label =
          std::string("ReadCsv ") + file + " (" + std::to_string(threads) + " thread(s))";
      Print(label.c_str(), t, static_cast<double>(fs::file_size(path)));
    }
  }
  const std::string init = (fs::path(dir) / "init.json").string();
  const double t_init =
      Best(repeats, [&] { return Report(agt::cli::ReadJsonFile(init).status()); });
  Print("ReadJsonFile init.json", t_init, static_cast<double>(fs::file_size(init)));
  if (results.empty()) return 0;

  absl::StatusOr<nlohmann::json> value;
  const double t_read = Best(repeats, [&] {
    value = agt::cli::ReadJsonFile(results);
    return Report(value.status());
  });
  const double bytes = static_cast<double>(fs::file_size(results));
  Print("ReadJsonFile results", t_read, bytes);
  const std::string out = (fs::temp_directory_path() / "agt_io_bench_out.json").string();
  for (int threads : {1, cores}) {
    if (threads == cores && cores == 1) break;
    const double t_write =
        Best(repeats, [&] { return Report(agt::cli::WriteJsonFile(*value, out, 1, threads)); });
    const std::string label = "WriteJsonFile results (" + std::to_string(threads) + " thread(s))";
    Print(label.c_str(), t_write, bytes);
  }
  const double t_dump = Best(repeats, [&] {
    std::ofstream o(out, std::ios::binary | std::ios::trunc);
    o << value->dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return static_cast<bool>(o);
  });
  Print("nlohmann dump + ofstream (before)", t_dump, bytes);
  std::remove(out.c_str());
  return 0;
}
