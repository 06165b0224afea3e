#!/usr/bin/env bash
# Regenerates the committed Swift code for the wire schema from Protocols/veil/v1/*.proto with
# Debian's protoc and swift-protobuf's plugin built from this package's own dependencies.
# The build never runs the generator: run this after changing a .proto and commit the output.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product protoc-gen-swift
BIN=$(swift build -c release --show-bin-path)
OUT=Sources/VeilWire/Generated
mkdir -p "$OUT"
protoc --proto_path=Protocols \
  --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" --swift_out="$OUT" --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true \
  Protocols/veil/v1/*.proto
echo "wrote $(ls "$OUT"/veil/v1/*.swift)"
