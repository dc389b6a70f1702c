// pyannote_dump.js: write and read the harness's dumps from JavaScript (node, no packages).
//
// The layout and names are dumps/README.md's; the Python side is port/dumps.py, and what
// this module writes is byte-identical to it (npy 1.0 and text arrays, manifest).
//
//   const pd = require("./writers/pyannote_dump.js");
//   const reference = new pd.Reader("dumps/reference/sample");
//   const logProbs = reference.load("03-segmentation", "out_log_probs"); // {dtype, shape, data: Float32Array}
//   const out = new pd.Writer("dumps", "myport", "sample");             // or {format: "txt"}
//   out.write("04-multilabel", "out_multilabel", multilabel, [C, F, 3]); // a Float32Array: float32
//   out.commit({uri: reference.manifest.uri, audio_sha256: reference.manifest.audio_sha256});
//   // then: python verify.py compare dumps/reference/sample dumps/myport/sample --stages 04
//
// Typed arrays carry the dtype: Float32Array float32, Float64Array float64, Int8Array int8,
// Uint8Array uint8, Int32Array int32, BigInt64Array int64. Errors are thrown with one line.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const path = require("path");

const STAGES = [
  "01-audio", "02-chunks", "03-segmentation", "04-multilabel", "05-count", "06-fbank", "07-masks",
  "08-embeddings", "09-filter", "10-linkage", "11-fcluster", "12-assign", "13-reconstruct", "14-annotation",
];

// numpy name, npy descriptor, typed array
const DTYPES = {
  float32: ["<f4", Float32Array], float64: ["<f8", Float64Array], int8: ["|i1", Int8Array],
  uint8: ["|u1", Uint8Array], int32: ["<i4", Int32Array], int64: ["<i8", BigInt64Array], bool: ["|b1", Uint8Array],
};

function dtypeOf(data) {
  for (const [name, [, Type]] of Object.entries(DTYPES)) if (data instanceof Type) return name;
  throw new Error("write needs a typed array (Float32Array, Float64Array, Int8Array, Uint8Array, Int32Array, BigInt64Array)");
}

// x's first `digits` significant digits and decimal exponent, correctly rounded with ties
// to even as C's printf and Python do (toExponential rounds ties away from zero: 16-bit
// audio samples such as 2/32768 = 6.103515625e-05 are exact ties at 9 digits).
function significant(x, digits) {
  const [mantissa, exp] = x.toExponential(digits - 1).split("e");
  if (!x.toExponential(digits).split("e")[0].endsWith("5")) return [mantissa.replace(".", ""), Number(exp)];
  const [full, fullExp] = x.toExponential(100).split("e"); // exact for a tie (digits + 1 significant)
  const exact = full.replace(".", "");
  if (Number(fullExp) === Number(exp) && exact[digits] === "5" && /^0*$/.test(exact.slice(digits + 1)) &&
      Number(exact[digits - 1]) % 2 === 0)
    return [exact.slice(0, digits), Number(exp)]; // a tie whose kept digit is even: round down
  return [mantissa.replace(".", ""), Number(exp)];
}

// C's %.<p>g (port/dumps.py writes '%.9g' for float32, '%.17g' for float64).
function formatG(x, precision) {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const sign = x < 0 ? "-" : "";
  const [digits, exponent] = significant(Math.abs(x), precision);
  const strip = (s) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (exponent >= -4 && exponent < precision) {
    const fixed = exponent >= 0
      ? `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`
      : `0.${"0".repeat(-exponent - 1)}${digits}`;
    return sign + strip(fixed);
  }
  return `${sign}${strip(`${digits[0]}.${digits.slice(1)}`)}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
}

function formatValue(value, dtype) {
  if (dtype === "float32") return formatG(value, 9);
  if (dtype === "float64") return formatG(value, 17);
  return String(value);
}

// numpy's npy 1.0 header: sorted dict, 21 - len(str(shape[0])) spare spaces, then space
// padding and '\n' so that magic + length + header is a multiple of 64 bytes.
function npyHeader(descr, shape) {
  const dims = shape.length === 1 ? `${shape[0]},` : shape.join(", ");
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  if (shape.length) header += " ".repeat(21 - String(shape[0]).length);
  const pad = 64 - ((8 + 2 + header.length + 1) % 64);
  header += " ".repeat(pad) + "\n";
  const prefix = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  return Buffer.concat([prefix, Buffer.from(header, "latin1")]);
}

// A typed array's bytes, little-endian, in a fresh buffer (swapped on a big-endian host;
// the same swap turns little-endian file bytes into host order).
function littleEndianBytes(data) {
  const out = new Uint8Array(data.byteLength);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    for (let i = 0; i < out.length; i += data.BYTES_PER_ELEMENT) out.subarray(i, i + data.BYTES_PER_ELEMENT).reverse();
  return out;
}

// manifest.json as Python's json.dumps(indent=2, sort_keys=True) writes it.
function manifestText(manifest) {
  const keys = Object.keys(manifest).sort();
  if (!keys.length) return "{}\n";
  return `{\n${keys.map((k) => `  ${JSON.stringify(k)}: ${JSON.stringify(manifest[k])}`).join(",\n")}\n}\n`;
}

// SHA-256 of a file's bytes as lowercase hex: the manifest's audio_sha256.
function sha256File(file) {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

// One recording's dump, collected in the hidden folder <root>/<side>/.<recording>.partial-<pid>
// and renamed to <root>/<side>/<recording> by commit(); abort() (or an uncaught error:
// the temp folder is removed on exit) leaves the previous dump untouched and no partial one.
class Writer {
  constructor(root, side, recording, { format = "npy" } = {}) {
    if (format !== "npy" && format !== "txt") throw new Error(`dump format must be npy or txt, not ${format}`);
    Object.assign(this, { root, side, recording, format, committed: false });
    this.final = path.join(root, side, recording);
    this.tmp = path.join(root, side, `.${recording}.partial-${process.pid}`);
    fs.rmSync(this.tmp, { recursive: true, force: true });
    fs.mkdirSync(this.tmp, { recursive: true });
    this._cleanup = () => this.abort();
    process.on("exit", this._cleanup);
  }

  _folder(stage) {
    if (!STAGES.includes(stage)) throw new Error(`unknown stage ${stage}`);
    const folder = path.join(this.tmp, stage);
    fs.mkdirSync(folder, { recursive: true });
    return folder;
  }

  // data: a typed array of prod(shape) values in C order; shape [] is a 0-d scalar.
  write(stage, name, data, shape) {
    const dtype = dtypeOf(data);
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`${stage}/${name}: ${data.length} values for shape (${shape.join(", ")})`);
    const folder = this._folder(stage);
    if (this.format === "npy") {
      fs.writeFileSync(path.join(folder, `${name}.npy`), Buffer.concat([npyHeader(DTYPES[dtype][0], shape), Buffer.from(littleEndianBytes(data))]));
      return;
    }
    const row = shape.length ? shape[shape.length - 1] : 1;
    const parts = [`# dtype: ${dtype}; shape: ${shape.join(" ")}\n`];
    for (let i = 0; i < data.length; i++) parts.push(formatValue(data[i], dtype), (i + 1) % row === 0 ? "\n" : " ");
    fs.writeFileSync(path.join(folder, `${name}.txt`), parts.join(""));
  }

  // Text compared verbatim, e.g. writeText("14-annotation", "out_diarization.rttm", rttm).
  writeText(stage, name, text) {
    fs.writeFileSync(path.join(this._folder(stage), name), text);
  }

  // Write manifest.json last ({uri, audio_sha256, ...}), then swap the complete dump into place.
  commit(manifest) {
    const full = { ...manifest, format: 1, side: this.side, recording: this.recording };
    fs.writeFileSync(path.join(this.tmp, "manifest.json"), manifestText(full));
    const old = path.join(this.root, this.side, `.${this.recording}.old-${process.pid}`);
    if (fs.existsSync(this.final)) fs.renameSync(this.final, old);
    fs.renameSync(this.tmp, this.final);
    fs.rmSync(old, { recursive: true, force: true });
    this.committed = true;
    process.removeListener("exit", this._cleanup);
    return this.final;
  }

  abort() {
    if (!this.committed) fs.rmSync(this.tmp, { recursive: true, force: true });
    process.removeListener("exit", this._cleanup);
  }
}

// npy format 1.0/2.0/3.0, little-endian or byte-sized dtypes, C order: {dtype, shape, data}.
function readNpy(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.length < 10 || bytes.subarray(1, 6).toString("latin1") !== "NUMPY") throw new Error(`${file}: not an npy file`);
  const [length, start] = bytes[6] === 1 ? [bytes.readUInt16LE(8), 10] : [bytes.readUInt32LE(8), 12];
  const header = bytes.subarray(start, start + length).toString("latin1");
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shape) throw new Error(`${file}: bad npy header`);
  if (header.includes("'fortran_order': True")) throw new Error(`${file}: Fortran-ordered npy not supported`);
  const dtype = Object.keys(DTYPES).find((k) => DTYPES[k][0] === descr[1]);
  if (!dtype) throw new Error(`${file}: unsupported npy dtype ${descr[1]}`);
  const dims = shape[1].split(",").map((d) => d.trim()).filter((d) => d).map(Number);
  const Type = DTYPES[dtype][1];
  const size = dims.reduce((a, b) => a * b, 1);
  const body = bytes.subarray(start + length, start + length + size * Type.BYTES_PER_ELEMENT);
  if (body.length < size * Type.BYTES_PER_ELEMENT) throw new Error(`${file}: truncated npy data`);
  const aligned = new Uint8Array(body.length); // Buffer memory may be unaligned for Float64Array
  aligned.set(body);
  return { dtype, shape: dims, data: new Type(littleEndianBytes(new Type(aligned.buffer, 0, size)).buffer, 0, size) };
}

// The text format: "# dtype: float32; shape: 21 589 7", then the values.
function readTxt(file) {
  const text = fs.readFileSync(file, "latin1");
  const eol = text.indexOf("\n");
  const header = eol < 0 ? text : text.slice(0, eol);
  const match = /^#\s*dtype:\s*(\w+);\s*shape:([\d ]*)$/.exec(header.trim());
  if (!match || !DTYPES[match[1]]) throw new Error(`${file}: bad header '${header}' (want '# dtype: float32; shape: 21 589 7')`);
  const dtype = match[1];
  const shape = match[2].split(" ").filter((d) => d).map(Number);
  const tokens = eol < 0 ? [] : text.slice(eol + 1).split(/\s+/).filter((t) => t);
  const size = shape.reduce((a, b) => a * b, 1);
  if (tokens.length !== size) throw new Error(`${file}: header says ${size} values, file has ${tokens.length}`);
  const Type = DTYPES[dtype][1];
  const parse = (t) => {
    const lower = t.toLowerCase();
    if (lower === "inf" || lower === "+inf") return Infinity;
    if (lower === "-inf") return -Infinity;
    if (lower === "nan" || lower === "-nan") return NaN;
    return Number(t);
  };
  const data = dtype === "int64" ? BigInt64Array.from(tokens, (t) => BigInt(t)) : Type.from(tokens, parse);
  return { dtype, shape, data };
}

// One recording's dump (the reference's, or any side's): load(stage, name).
class Reader {
  constructor(dir) {
    const file = path.join(dir, "manifest.json");
    if (!fs.existsSync(file)) throw new Error(`${dir}: no manifest.json (not a dump, or an interrupted one)`);
    this.path = dir;
    this.manifest = JSON.parse(fs.readFileSync(file, "utf8"));
  }

  has(stage, name) {
    return ["", ".npy", ".txt"].some((s) => fs.existsSync(path.join(this.path, stage, name + s)));
  }

  // Names dumped for a stage (without .npy/.txt; .rttm files keep their suffix), sorted.
  names(stage) {
    const folder = path.join(this.path, stage);
    if (!fs.existsSync(folder)) return [];
    const names = new Set();
    for (const file of fs.readdirSync(folder)) {
      if (file.endsWith(".npy") || file.endsWith(".txt")) names.add(file.slice(0, -4));
      else if (file.endsWith(".rttm")) names.add(file);
    }
    return [...names].sort();
  }

  load(stage, name) {
    const base = path.join(this.path, stage, name);
    if (fs.existsSync(`${base}.npy`)) return readNpy(`${base}.npy`);
    if (fs.existsSync(`${base}.txt`)) return readTxt(`${base}.txt`);
    throw new Error(`${this.path}: ${stage}/${name} missing`);
  }

  loadText(stage, name) {
    return fs.readFileSync(path.join(this.path, stage, name), "utf8");
  }
}

module.exports = { STAGES, Writer, Reader, readNpy, readTxt, sha256File, formatG };
