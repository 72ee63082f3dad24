// The library's release version and the on-disk format version it writes.
//
// The release version follows semantic versioning: a new MAJOR may change the
// API or ABI, a new MINOR adds to it, a new PATCH only fixes. While MAJOR is
// 0, every MINOR may change the API and ABI: the shared library's SONAME is
// libwalstate.so.MAJOR.MINOR until 1.0 (libwalstate.so.0.1), MAJOR after.
//
// The on-disk format version is independent of the release: it is stored in
// every file header (docs/FORMAT.md) and changes only when the format does.
// A build reads the files of its own format version and refuses others with
// an error naming the file; it never rewrites them silently.
#ifndef WALSTATE_VERSION_H_
#define WALSTATE_VERSION_H_

#define WALSTATE_VERSION_MAJOR 0
#define WALSTATE_VERSION_MINOR 1
#define WALSTATE_VERSION_PATCH 0

// The format_version field of the file headers this release reads and writes.
#define WALSTATE_FORMAT_VERSION 1

namespace walstate {

// The version of the library actually linked, "MAJOR.MINOR.PATCH": compare it
// with the WALSTATE_VERSION_* macros to catch a header/library mismatch.
const char* Version();

// The on-disk format version of the library actually linked.
int FormatVersion();

}  // namespace walstate

#endif  // WALSTATE_VERSION_H_
