// Built only by the CMake build (WALSTATE_BUILD_BENCHMARKS=ON): a BATCHED
// update through the CMake-built library, to compare a CMake build's
// compiler flags with Bazel's. The benchmarks that back the README's figures
// are bench/ (Bazel).
#include <stdlib.h>

#include <string>

#include "benchmark/benchmark.h"
#include "google/protobuf/duration.pb.h"
#include "walstate/walstate.h"

namespace {

void BM_BatchedUpdate(benchmark::State& state) {
  char tmpl[] = "/tmp/walstate-cmake-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    state.SkipWithError("mkdtemp failed");
    return;
  }
  walstate::Options options;
  options.background_thread = false;
  auto store = walstate::Store<google::protobuf::Duration>::Open(
      options, std::string(tmpl) + "/store");
  if (!store.ok()) {
    state.SkipWithError(std::string(store.status().message()).c_str());
    return;
  }
  google::protobuf::Duration v;
  int64_t i = 0;
  for (auto _ : state) {
    v.set_seconds(++i);
    benchmark::DoNotOptimize(
        (*store)->Update("s" + std::to_string(i % 1024), v, {"seconds"}));
  }
  (void)(*store)->Close();
}
BENCHMARK(BM_BatchedUpdate);

}  // namespace
