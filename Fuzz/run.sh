#!/usr/bin/env bash
# Builds veil-fuzz as a libFuzzer target (AddressSanitizer on) and fuzzes the device-message
# decoders for SECONDS (default 30) starting from the committed seed corpus in Fuzz/corpus.
# New inputs go to a scratch directory, not the committed corpus; a crash leaves its input in
# Fuzz/artifacts/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN="${1:-30}"
# Compile the target and its dependencies instrumented, then link with libFuzzer's main ourselves:
# SwiftPM's own link of an executable target would redirect `main` to the target's entry point.
swift build -c release --target VeilFuzz --scratch-path .build-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DVEIL_FUZZ -Xswiftc -parse-as-library
OBJ="$(swift build -c release --scratch-path .build-fuzz --show-bin-path)"
BIN="$OBJ/veil-fuzz-libfuzzer"
swiftc -sanitize=fuzzer,address -use-ld=lld \
  "$OBJ"/VeilFuzz.build/*.o "$OBJ"/VeilWire.build/*.o "$OBJ"/VeilProtocol.build/*.o \
  "$OBJ"/VeilCrypto.build/*.o "$OBJ"/SwiftProtobuf.build/*.o \
  $(pkg-config --libs libsodium libcrypto) -o "$BIN"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p Fuzz/artifacts
"$BIN" -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -artifact_prefix=Fuzz/artifacts/ "$WORK" Fuzz/corpus
