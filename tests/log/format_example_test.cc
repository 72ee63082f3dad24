// docs/FORMAT.md's §3 example is what the writer's encoder produces: a
// segment header and two frames, the first with the after-sync flag (§3.2:
// the first frame of a segment follows the synced header).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "engine/log/format.h"
#include "gtest/gtest.h"

namespace walstate {
namespace log {
namespace {

// The example's bytes, from the encoder.
std::string ExampleBytes() {
  FileHeader h;
  h.kind = FileKind::kSegment;
  h.file_number = 1;
  h.first_lsn = 1;
  h.salt = 0x0123456789abcdefull;
  h.created_micros = 1700000000000000ull;
  std::string bytes;
  EncodeFileHeader(h, &bytes);
  const size_t first = bytes.size();
  EncodeRecord(h.salt, 1, kUpdate, "hello", &bytes);
  SetRecordFlags(h.salt, kRecordFlagAfterSync, &bytes[first],
                 bytes.size() - first);
  EncodeRecord(h.salt, 2, kTickBegin, "", &bytes);
  return bytes;
}

// The hex columns of an `xxd` dump: "00000000: 8957 5354 ..." lines.
std::string HexOfDump(const std::string& dump) {
  std::string hex;
  for (absl::string_view line : absl::StrSplit(dump, '\n')) {
    if (line.size() < 10 || line[8] != ':') continue;
    absl::string_view cols = line.substr(10, 40);
    for (char c : cols) {
      if (c != ' ') hex.push_back(c);
    }
  }
  return hex;
}

std::string Xxd(const std::string& bytes) {
  std::string out;
  for (size_t off = 0; off < bytes.size(); off += 16) {
    absl::StrAppend(&out, absl::StrFormat("%08x:", off));
    for (size_t i = off; i < off + 16 && i < bytes.size(); i += 2) {
      absl::StrAppend(&out, " ");
      for (size_t j = i; j < i + 2 && j < bytes.size(); ++j) {
        absl::StrAppend(
            &out,
            absl::StrFormat("%02x", static_cast<unsigned char>(bytes[j])));
      }
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

TEST(FormatExample, DocumentedBytesAreTheEncoders) {
  std::ifstream in("docs/FORMAT.md");
  ASSERT_TRUE(in) << "docs/FORMAT.md is not in the runfiles";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  const std::string marker = "Example: a segment with an empty schema";
  const size_t at = doc.find(marker);
  ASSERT_NE(at, std::string::npos);
  const size_t begin = doc.find("```\n", at);
  const size_t end = doc.find("```", begin + 4);
  ASSERT_NE(end, std::string::npos);
  const std::string documented = HexOfDump(doc.substr(begin, end - begin));
  const std::string bytes = ExampleBytes();
  EXPECT_EQ(documented, HexOfDump(Xxd(bytes))) << "the encoder writes:\n"
                                               << Xxd(bytes);
  // And the first frame does carry the flag (byte 13 of the frame).
  EXPECT_EQ(bytes[64 + 13], static_cast<char>(kRecordFlagAfterSync));
}

}  // namespace
}  // namespace log
}  // namespace walstate
