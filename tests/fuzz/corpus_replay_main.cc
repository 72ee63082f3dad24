// A main() for running a libFuzzer target without libFuzzer (any compiler):
// every file named on the command line, or found in a directory named there,
// goes through LLVMFuzzerTestOneInput once. The corpus tests (*_corpus_test)
// use it so that the regular and the sanitizer suites exercise the committed
// corpus; it also reproduces a crash from a saved input. Like libFuzzer's
// -rss_limit_mb, it fails if an input makes the process grow past
// kRssLimitMb (a huge allocation driven by the input).
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

constexpr long kRssLimitMb = 1024;

long PeakRssMb() {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return usage.ru_maxrss / 1024;  // ru_maxrss is in KiB on Linux
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void Collect(const std::string& path, std::vector<std::string>* out) {
  if (!IsDir(path)) {
    out->push_back(path);
    return;
  }
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    names.push_back(name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) Collect(path + "/" + name, out);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) Collect(argv[i], &files);
  if (files.empty()) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...  (no input found)\n",
                 argv[0]);
    return 1;
  }
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", file.c_str());
      return 1;
    }
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string data = buf.str();
    std::fprintf(stderr, "running %s (%zu bytes)\n", file.c_str(), data.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()),
                           data.size());
    const long rss = PeakRssMb();
    if (rss > kRssLimitMb) {
      std::fprintf(stderr, "%s: peak RSS %ld MB exceeds %ld MB\n", file.c_str(),
                   rss, kRssLimitMb);
      return 1;
    }
  }
  std::printf("%zu inputs ran without a crash\n", files.size());
  return 0;
}
