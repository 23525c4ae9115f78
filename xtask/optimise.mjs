// Optimises WASM files in place with binaryen's JavaScript API: `cargo xtask build --release`
// runs one of these per core over the split WASM's hundreds of parts. One process loads
// binaryen once, where one `wasm-opt` per file would load it for every file (a third of a
// second each). Usage: node optimise.mjs BINARYEN_INDEX_JS FILE...
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [binaryenIndex, ...files] = process.argv.slice(2);
const { default: binaryen } = await import(pathToFileURL(binaryenIndex));

// `-O1` with shrink level 1. Measured on Slipway's parts, gzip -9 (what the browser is sent
// after compression): main part 233.6 KB against 247.2 KB for `-Oz` and 241.2 KB for names
// stripped only; stack page chunk 213.9 KB against 265.2 KB for `-Oz`. The heavier levels
// inline more, which makes the code smaller raw but larger once compressed, and cost three to
// four times the time.
binaryen.setOptimizeLevel(1);
binaryen.setShrinkLevel(1);
// The name section goes: it is most of an unoptimised part's bytes.
binaryen.setDebugInfo(false);

// What rustc's wasm32-unknown-unknown target emits (the main part, after wasm-bindgen, has no
// target_features section to say so).
const features =
  binaryen.Features.MutableGlobals |
  binaryen.Features.SignExt |
  binaryen.Features.BulkMemory |
  binaryen.Features.NontrappingFPToInt;

for (const file of files) {
  const module = binaryen.readBinary(readFileSync(file));
  try {
    module.setFeatures(module.getFeatures() | features);
    if (!module.validate()) throw new Error(`${file} is not a valid WASM module`);
    module.optimize();
    writeFileSync(file, module.emitBinary());
  } finally {
    module.dispose();
  }
}
