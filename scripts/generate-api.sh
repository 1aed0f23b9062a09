#!/usr/bin/env bash
# Regenerates Sources/ClusterAPI/Generated/ (Swift messages and gRPC stubs) from
# Sources/ClusterAPI/Protos/*.proto, with the code generators of the runtime versions the
# package depends on: swift-protobuf 1.39.0 (protoc-gen-swift) and grpc-swift-protobuf 2.4.1
# (protoc-gen-grpc-swift-2). Commit the generated files; builds and CI never run this.
#
#   scripts/generate-api.sh           install protoc if missing, build both plugins, generate
#   scripts/generate-api.sh --check   only check that protoc accepts every .proto (no Swift build)
#   PROTOC_GEN_SWIFT=… PROTOC_GEN_GRPC_SWIFT=… scripts/generate-api.sh   use plugins already built
#
# The plugins are built once in .build-protoc/ (ignored by git through `.build*/`); a first
# build takes several minutes on two cores, later runs reuse it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROTO_DIR=Sources/ClusterAPI/Protos
OUT_DIR=Sources/ClusterAPI/Generated
TOOLS_DIR=.build-protoc

SWIFT_PROTOBUF_REPO="${SWIFT_PROTOBUF_REPO:-/opt/swift-packages/apple/swift-protobuf.git}"
SWIFT_PROTOBUF_VERSION=1.39.0
SWIFT_PROTOBUF_PRODUCT=protoc-gen-swift
GRPC_PROTOBUF_REPO="${GRPC_PROTOBUF_REPO:-/opt/swift-packages/grpc/grpc-swift-protobuf.git}"
GRPC_PROTOBUF_VERSION=2.4.1
GRPC_PROTOBUF_PRODUCT=protoc-gen-grpc-swift-2

say() { printf 'generate-api: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"
  fi
}

# 1. protoc, and the well-known types (google/protobuf/*.proto) it compiles against.
if ! command -v protoc >/dev/null 2>&1; then
  say "protoc not found; installing protobuf-compiler with apt-get"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler libprotobuf-dev
fi
say "using $(protoc --version) at $(command -v protoc)"

well_known_dir() {
  local dir
  for dir in /usr/include /usr/local/include "$TOOLS_DIR/swift-protobuf/Protos/Sources/SwiftProtobuf"; do
    if [ -f "$dir/google/protobuf/timestamp.proto" ] && [ -f "$dir/google/protobuf/duration.proto" ]; then
      printf '%s\n' "$dir"; return 0
    fi
  done
  return 1
}

PROTOS=()
for f in "$PROTO_DIR"/*.proto; do PROTOS+=("$f"); done
[ "${#PROTOS[@]}" -gt 0 ] || die "no .proto files in $PROTO_DIR"

if [ "${1:-}" = "--check" ]; then
  WKT="$(well_known_dir)" || die "google/protobuf/timestamp.proto not found: apt-get install libprotobuf-dev"
  protoc --proto_path="$PROTO_DIR" --proto_path="$WKT" --include_imports \
    --descriptor_set_out=/dev/null "${PROTOS[@]}"
  say "protoc accepts all ${#PROTOS[@]} files"
  exit 0
fi

# 2. The two plugins, built from checkouts of the exact versions.
checkout() { # repo version dir
  local repo="$1" version="$2" dir="$3"
  if [ ! -d "$dir/.git" ]; then
    say "cloning $repo into $dir"
    git clone --quiet "$repo" "$dir"
  fi
  if ! git -C "$dir" rev-parse --quiet --verify "refs/tags/$version" >/dev/null; then
    git -C "$dir" fetch --quiet --tags origin
  fi
  git -C "$dir" -c advice.detachedHead=false checkout --quiet "refs/tags/$version"
}

build_plugin() { # package-dir product -> prints the binary's path
  local dir="$1" product="$2" bin
  say "building $product in $dir (release)"
  swift build -c release --product "$product" --package-path "$dir" >&2
  bin="$(swift build -c release --package-path "$dir" --show-bin-path)/$product"
  [ -x "$bin" ] || die "$product was not built at $bin"
  printf '%s\n' "$bin"
}

# PROTOC_GEN_SWIFT / PROTOC_GEN_GRPC_SWIFT may name plugins built elsewhere (same versions!).
mkdir -p "$TOOLS_DIR"
if [ -n "${PROTOC_GEN_SWIFT:-}" ]; then
  SWIFT_PLUGIN="$PROTOC_GEN_SWIFT"
else
  checkout "$SWIFT_PROTOBUF_REPO" "$SWIFT_PROTOBUF_VERSION" "$TOOLS_DIR/swift-protobuf"
  SWIFT_PLUGIN="$(build_plugin "$TOOLS_DIR/swift-protobuf" "$SWIFT_PROTOBUF_PRODUCT")"
fi
if [ -n "${PROTOC_GEN_GRPC_SWIFT:-}" ]; then
  GRPC_PLUGIN="$PROTOC_GEN_GRPC_SWIFT"
else
  checkout "$GRPC_PROTOBUF_REPO" "$GRPC_PROTOBUF_VERSION" "$TOOLS_DIR/grpc-swift-protobuf"
  GRPC_PLUGIN="$(build_plugin "$TOOLS_DIR/grpc-swift-protobuf" "$GRPC_PROTOBUF_PRODUCT")"
fi

WKT="$(well_known_dir)" || die "google/protobuf/timestamp.proto not found"

# 3. Generate: messages for every file, gRPC stubs for the files that declare a service.
SERVICE_PROTOS=()
for f in "${PROTOS[@]}"; do
  if grep -q '^service ' "$f"; then SERVICE_PROTOS+=("$f"); fi
done

mkdir -p "$OUT_DIR"
find "$OUT_DIR" -maxdepth 1 -name '*.swift' -delete

protoc --proto_path="$PROTO_DIR" --proto_path="$WKT" \
  --plugin="protoc-gen-swift=$SWIFT_PLUGIN" \
  --swift_out="$OUT_DIR" \
  --swift_opt=Visibility=Public \
  "${PROTOS[@]}"

protoc --proto_path="$PROTO_DIR" --proto_path="$WKT" \
  --plugin="protoc-gen-grpc-swift-2=$GRPC_PLUGIN" \
  --grpc-swift-2_out="$OUT_DIR" \
  --grpc-swift-2_opt=Visibility=Public \
  --grpc-swift-2_opt=Server=true \
  --grpc-swift-2_opt=Client=true \
  "${SERVICE_PROTOS[@]}"

say "wrote $(find "$OUT_DIR" -maxdepth 1 -name '*.swift' | wc -l | tr -d ' ') files to $OUT_DIR"
