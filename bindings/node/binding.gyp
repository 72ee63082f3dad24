# Built by scripts/build.sh (npm install / npm run build), which generates
# the engine's protobuf sources into gen/ first.
{
  "variables": {
    "repo": "<(module_root_dir)/../..",
  },
  "targets": [
    {
      "target_name": "walstate",
      "sources": [
        "src/addon.cc",
        "src/committer.cc",
        "src/convert.cc",
        "src/schema_loader.cc",
        "src/store_wrap.cc",
        # Interim: the engine's sources, until the top-level CMake build's
        # static library is linked instead.
        "<!@(bash scripts/engine_sources.sh)",
        "gen/walstate/options.pb.cc",
        "gen/proto/walstate/record.pb.cc",
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(repo)",
        "<(repo)/include",
        "<(module_root_dir)/gen",
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-frtti", "-O2", "-Wall", "-Wno-unused-parameter", "-Wno-sign-compare"],
      "libraries": [
        "-lprotoc", "-lprotobuf", "-lxxhash", "-lpthread",
        "<!@(bash <(module_root_dir)/scripts/absl_libs.sh)",
      ],
    }
  ]
}
