// Test driver for writers/pyannote_dump.js: read every array of one recording's dump
// (npy or txt) and write it again with the JavaScript writer, as a port would.
//   node copy_dump.js SOURCE_RECORDING OUT_ROOT SIDE npy|txt [abort]
// "abort" fails before commit: nothing may appear under OUT_ROOT/SIDE.
//   node copy_dump.js sha256 FILE      prints sha256File(FILE)
"use strict";
const path = require("path");
const pd = require("../../writers/pyannote_dump.js");

const [source, root, side, format, abort] = process.argv.slice(2);
if (source === "sha256") console.log(pd.sha256File(root));
else try {
  const reference = new pd.Reader(source);
  const out = new pd.Writer(root, side, path.basename(source), { format });
  for (const stage of pd.STAGES) {
    for (const name of reference.names(stage)) {
      if (name.endsWith(".rttm")) out.writeText(stage, name, reference.loadText(stage, name));
      else {
        const array = reference.load(stage, name);
        out.write(stage, name, array.data, array.shape);
      }
    }
  }
  if (abort === "abort") throw new Error("aborted on purpose");
  out.commit({ uri: reference.manifest.uri, audio_sha256: reference.manifest.audio_sha256, models: "fixture" });
} catch (error) {
  console.error(`error: ${error.message}`);
  process.exitCode = 1;
}
