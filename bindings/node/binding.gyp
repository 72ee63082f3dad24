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
        "../../engine/fs/kill_point.cc",
        "../../engine/fs/posix_file_system.cc",
        "../../engine/log/format.cc",
        "../../engine/log/reader.cc",
        "../../engine/log/writer.cc",
        "../../engine/recovery.cc",
        "../../engine/replication/catch_up.cc",
        "../../engine/replication/restore.cc",
        "../../engine/replication/shipper.cc",
        "../../engine/replication/wire.cc",
        "../../engine/snapshot/manifest.cc",
        "../../engine/snapshot/snapshot_loader.cc",
        "../../engine/snapshot/snapshot_writer.cc",
        "../../engine/state/apply_pool.cc",
        "../../engine/state/hash_split.cc",
        "../../engine/state/lazy_state.cc",
        "../../engine/state/message_fields.cc",
        "../../engine/state/replayer.cc",
        "../../engine/state/schema.cc",
        "../../engine/state/secondary_index.cc",
        "../../engine/state/session_id.cc",
        "../../engine/state/session_node.cc",
        "../../engine/state/session_shard.cc",
        "../../engine/state/session_table.cc",
        "../../engine/state/session_table_lazy.cc",
        "../../engine/state/update_codec.cc",
        "../../engine/walstate.cc",
        "gen/proto/walstate/options.pb.cc",
        "gen/proto/walstate/record.pb.cc",
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(repo)",
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
