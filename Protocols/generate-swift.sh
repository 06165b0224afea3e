#!/usr/bin/env bash
# Regenerates the committed Swift code for the wire schema from Protocols/veil/v1/*.proto with
# Debian's protoc (apt-get install protobuf-compiler) and the swift-protobuf and grpc-swift-2
# plugins built from this package's own dependencies. The build never runs a generator: run this
# after changing a .proto and commit the output.
#   messages (swift-protobuf)  -> Sources/VeilWire/Generated      (no gRPC dependency: fuzzable)
#   service stubs (grpc-swift) -> Sources/VeilTransport/Generated
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product protoc-gen-swift
swift build -c release --product protoc-gen-grpc-swift-2
BIN=$(swift build -c release --show-bin-path)
MESSAGES=Sources/VeilWire/Generated
STUBS=Sources/VeilTransport/Generated
mkdir -p "$MESSAGES" "$STUBS"
protoc --proto_path=Protocols \
  --plugin=protoc-gen-swift="$BIN/protoc-gen-swift" --swift_out="$MESSAGES" \
  --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true \
  Protocols/veil/v1/*.proto
protoc --proto_path=Protocols \
  --plugin=protoc-gen-grpc-swift-2="$BIN/protoc-gen-grpc-swift-2" --grpc-swift-2_out="$STUBS" \
  --grpc-swift-2_opt=Visibility=Public --grpc-swift-2_opt=UseAccessLevelOnImports=true \
  --grpc-swift-2_opt=ExtraModuleImports=VeilWire \
  Protocols/veil/v1/service.proto
echo "wrote $(ls "$MESSAGES"/veil/v1/*.swift "$STUBS"/veil/v1/*.swift)"
