//! pyannote_dump.rs: write and read the harness's dumps from Rust (std only, no crates).
//!
//! The layout and names are dumps/README.md's; the Python side is port/dumps.py, and what
//! this module writes is byte-identical to it (npy 1.0 and text arrays, manifest).
//! Compiles alone: `rustc --edition 2021 --crate-type lib writers/pyannote_dump.rs`,
//! or copy it into your crate as a module (`mod pyannote_dump;`).
//!
//! ```ignore
//! use pyannote_dump::{Format, Manifest, Reader, Writer};
//! // pyannote's own inputs for a stage (npy or txt, whichever was dumped)
//! let reference = Reader::open("dumps/reference/sample")?;
//! let log_probs = reference.load("03-segmentation", "out_log_probs")?;   // .shape == [C, F, 7]
//! let x: Vec<f32> = log_probs.to_vec()?;
//! // your outputs: nothing appears under dumps/myport/sample until commit()
//! let mut out = Writer::new("dumps", "myport", "sample", Format::Npy)?;
//! out.write("04-multilabel", "out_multilabel", &multilabel, &[c, f, 3])?;
//! let mut manifest = Manifest::new();
//! manifest.set_str("uri", &reference.manifest_string("uri").unwrap_or_default());
//! manifest.set_str("audio_sha256", &reference.manifest_string("audio_sha256").unwrap_or_default());
//! out.commit(manifest)?;   // then: python verify.py compare REF dumps/myport/sample --stages 04
//! ```
//! Errors are `std::io::Error`s with a one-line message.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// The stage folders, in pipeline order (port/dumps.py's STAGES).
pub const STAGES: [&str; 14] = [
    "01-audio", "02-chunks", "03-segmentation", "04-multilabel", "05-count", "06-fbank", "07-masks",
    "08-embeddings", "09-filter", "10-linkage", "11-fcluster", "12-assign", "13-reconstruct", "14-annotation",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Npy,
    Txt,
}

fn error(message: String) -> Error {
    Error::new(ErrorKind::InvalidData, message)
}

// ----------------------------------------------------------------------------- number text
/// x's first `digits` significant digits and decimal exponent (x > 0, finite), correctly
/// rounded with ties to even as C's printf and Python do. Rust before 1.67 rounds exact
/// ties up (16-bit audio samples such as 2/32768 = 6.103515625e-05 are ties at 9 digits),
/// so a tie is settled here from x's exact expansion.
fn significant(x: f64, digits: usize) -> (String, i32) {
    let rounded = format!("{:.*e}", digits - 1, x);
    let (mantissa, exponent) = rounded.split_once('e').unwrap();
    let result = (mantissa.replace('.', ""), exponent.parse::<i32>().unwrap());
    if !format!("{:.*e}", digits, x).split_once('e').unwrap().0.ends_with('5') {
        return result;
    }
    let exact = format!("{:.767e}", x); // every digit a double has
    let (all, exact_exponent) = exact.split_once('e').unwrap();
    let all = all.replace('.', "");
    let tie = all.as_bytes()[digits] == b'5' && all[digits + 1..].bytes().all(|c| c == b'0');
    if tie && (all.as_bytes()[digits - 1] - b'0') % 2 == 0 {
        return (all[..digits].to_string(), exact_exponent.parse().unwrap()); // round down to even
    }
    result
}

/// C's `%.<precision>g` (what port/dumps.py's write_text_array prints: 9 digits for
/// float32, 17 for float64).
pub fn format_g(x: f64, precision: usize) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let (digits, exponent) = significant(x.abs(), precision);
    let strip = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if exponent >= -4 && exponent < precision as i32 {
        let fixed = if exponent >= 0 {
            let point = exponent as usize + 1;
            format!("{}.{}", &digits[..point], &digits[point..])
        } else {
            format!("0.{}{}", "0".repeat((-exponent - 1) as usize), digits)
        };
        format!("{}{}", sign, strip(fixed))
    } else {
        let mantissa = strip(format!("{}.{}", &digits[..1], &digits[1..]));
        let e_sign = if exponent < 0 { '-' } else { '+' };
        format!("{}{}e{}{:02}", sign, mantissa, e_sign, exponent.abs())
    }
}

// ----------------------------------------------------------------------------- element types
/// An element type a dump uses: its numpy name, npy descriptor and text form.
pub trait Element: Copy {
    const NAME: &'static str;
    const DESCR: &'static str;
    fn put_le(self, out: &mut Vec<u8>);
    fn text(self) -> String;
    fn from_f64(value: f64) -> Self;
    fn from_i64(value: i64) -> Self;
}

macro_rules! integer {
    ($t:ty, $name:expr, $descr:expr) => {
        impl Element for $t {
            const NAME: &'static str = $name;
            const DESCR: &'static str = $descr;
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn text(self) -> String {
                self.to_string()
            }
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            fn from_i64(value: i64) -> Self {
                value as $t
            }
        }
    };
}
integer!(i8, "int8", "|i1");
integer!(u8, "uint8", "|u1");
integer!(i32, "int32", "<i4");
integer!(i64, "int64", "<i8");

impl Element for f32 {
    const NAME: &'static str = "float32";
    const DESCR: &'static str = "<f4";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn text(self) -> String {
        format_g(self as f64, 9)
    }
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    fn from_i64(value: i64) -> Self {
        value as f32
    }
}

impl Element for f64 {
    const NAME: &'static str = "float64";
    const DESCR: &'static str = "<f8";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn text(self) -> String {
        format_g(self, 17)
    }
    fn from_f64(value: f64) -> Self {
        value
    }
    fn from_i64(value: i64) -> Self {
        value as f64
    }
}

fn count(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// numpy's npy 1.0 header: sorted dict, 21 - len(str(shape[0])) spare spaces, then space
/// padding and '\n' so that magic + length + header is a multiple of 64 bytes.
fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = if shape.len() == 1 {
        format!("{},", shape[0])
    } else {
        shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr, dims);
    if let Some(first) = shape.first() {
        header.push_str(&" ".repeat(21 - first.to_string().len()));
    }
    let hlen = header.len() + 1;
    let pad = 64 - ((8 + 2 + hlen) % 64);
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

fn json_string(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ----------------------------------------------------------------------------- manifest
/// manifest.json's values, written with sorted keys and 2-space indent (Python's
/// json.dumps(indent=2, sort_keys=True)). The harness needs "audio_sha256" (compare refuses
/// dumps of other audio) and uses "uri" in RTTM lines; commit adds format, side, recording.
#[derive(Default, Clone)]
pub struct Manifest {
    values: BTreeMap<String, String>,
}

impl Manifest {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn set_str(&mut self, key: &str, value: &str) {
        self.values.insert(key.into(), json_string(value));
    }
    pub fn set_int(&mut self, key: &str, value: i64) {
        self.values.insert(key.into(), value.to_string());
    }
    pub fn set_null(&mut self, key: &str) {
        self.values.insert(key.into(), "null".into());
    }
    pub fn set_json(&mut self, key: &str, raw_json: &str) {
        self.values.insert(key.into(), raw_json.into());
    }
    pub fn text(&self) -> String {
        if self.values.is_empty() {
            return "{}\n".into();
        }
        let body: Vec<String> = self.values.iter().map(|(k, v)| format!("  {}: {}", json_string(k), v)).collect();
        format!("{{\n{}\n}}\n", body.join(",\n"))
    }
}

// ----------------------------------------------------------------------------- sha256
/// SHA-256 of a file's bytes as lowercase hex: the manifest's audio_sha256.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<String> {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let mut data = fs::read(path)?;
    let bits = (data.len() as u64).wrapping_mul(8);
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&bits.to_be_bytes());
    for block in data.chunks(64) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let t1 = hh.wrapping_add(s1).wrapping_add((e & f) ^ (!e & g)).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let t2 = s0.wrapping_add((a & b) ^ (a & c) ^ (b & c));
            hh = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    Ok(h.iter().map(|x| format!("{:08x}", x)).collect())
}

// ----------------------------------------------------------------------------- writer
/// One recording's dump, collected in the hidden folder `<root>/<side>/.<recording>.partial-<pid>`
/// and renamed to `<root>/<side>/<recording>` by `commit`: an error or a panic (Drop) leaves the
/// previous dump untouched and no partial one (readers skip hidden folders).
pub struct Writer {
    root: PathBuf,
    side: String,
    recording: String,
    format: Format,
    tmp: PathBuf,
    committed: bool,
}

impl Writer {
    pub fn new(root: impl AsRef<Path>, side: &str, recording: &str, format: Format) -> Result<Writer> {
        let root = root.as_ref().to_path_buf();
        let tmp = root.join(side).join(format!(".{}.partial-{}", recording, std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        Ok(Writer { root, side: side.into(), recording: recording.into(), format, tmp, committed: false })
    }

    fn stage_folder(&self, stage: &str) -> Result<PathBuf> {
        if !STAGES.contains(&stage) {
            return Err(error(format!("unknown stage {}", stage)));
        }
        let folder = self.tmp.join(stage);
        fs::create_dir_all(&folder)?;
        Ok(folder)
    }

    /// `data`: prod(shape) values in C order (row-major); `&[]` is a 0-d scalar.
    pub fn write<T: Element>(&mut self, stage: &str, name: &str, data: &[T], shape: &[usize]) -> Result<()> {
        if data.len() != count(shape) {
            return Err(error(format!("{}/{}: {} values for shape {:?}", stage, name, data.len(), shape)));
        }
        let folder = self.stage_folder(stage)?;
        match self.format {
            Format::Npy => {
                let mut bytes = npy_header(T::DESCR, shape);
                bytes.reserve(data.len() * std::mem::size_of::<T>());
                for &value in data {
                    value.put_le(&mut bytes);
                }
                fs::write(folder.join(format!("{}.npy", name)), bytes)
            }
            Format::Txt => {
                let dims = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(" ");
                let mut text = format!("# dtype: {}; shape: {}\n", T::NAME, dims);
                let row = shape.last().copied().unwrap_or(1);
                for (i, &value) in data.iter().enumerate() {
                    text.push_str(&value.text());
                    text.push(if (i + 1) % row == 0 { '\n' } else { ' ' });
                }
                fs::write(folder.join(format!("{}.txt", name)), text)
            }
        }
    }

    pub fn write_scalar<T: Element>(&mut self, stage: &str, name: &str, value: T) -> Result<()> {
        self.write(stage, name, &[value], &[])
    }

    /// Text compared verbatim, e.g. `write_text("14-annotation", "out_diarization.rttm", &rttm)`.
    pub fn write_text(&mut self, stage: &str, name: &str, text: &str) -> Result<()> {
        let folder = self.stage_folder(stage)?;
        fs::write(folder.join(name), text)
    }

    /// Write manifest.json last, then swap the complete dump into place.
    pub fn commit(mut self, mut manifest: Manifest) -> Result<PathBuf> {
        manifest.set_int("format", 1);
        manifest.set_str("side", &self.side);
        manifest.set_str("recording", &self.recording);
        fs::write(self.tmp.join("manifest.json"), manifest.text())?;
        let folder = self.root.join(&self.side);
        let fin = folder.join(&self.recording);
        let old = folder.join(format!(".{}.old-{}", self.recording, std::process::id()));
        if fin.exists() {
            fs::rename(&fin, &old)?;
        }
        fs::rename(&self.tmp, &fin)?;
        if old.exists() {
            fs::remove_dir_all(&old)?;
        }
        self.committed = true;
        Ok(fin)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

// ----------------------------------------------------------------------------- reader
/// An array read from a dump: numpy dtype name, shape, little-endian element bytes.
#[derive(Clone, Debug)]
pub struct Array {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

fn itemsize(dtype: &str) -> Result<usize> {
    match dtype {
        "float64" | "int64" => Ok(8),
        "float32" | "int32" => Ok(4),
        "int8" | "uint8" | "bool" => Ok(1),
        _ => Err(error(format!("unsupported dtype {}", dtype))),
    }
}

impl Array {
    pub fn size(&self) -> usize {
        count(&self.shape)
    }

    /// The values converted to T (an `as` cast per element), in C order.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let size = itemsize(&self.dtype)?;
        let mut out = Vec::with_capacity(self.size());
        for b in self.bytes.chunks_exact(size) {
            out.push(match self.dtype.as_str() {
                "float32" => T::from_f64(f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
                "float64" => T::from_f64(f64::from_le_bytes(b.try_into().unwrap())),
                "int8" => T::from_i64(b[0] as i8 as i64),
                "uint8" | "bool" => T::from_i64(b[0] as i64),
                "int32" => T::from_i64(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
                _ => T::from_i64(i64::from_le_bytes(b.try_into().unwrap())),
            });
        }
        Ok(out)
    }

    pub fn scalar<T: Element>(&self) -> Result<T> {
        if self.size() != 1 {
            return Err(error(format!("not a scalar: {} values", self.size())));
        }
        Ok(self.to_vec::<T>()?[0])
    }
}

/// npy format 1.0/2.0/3.0, little-endian or byte-sized dtypes, C order.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let where_ = path.display();
    let bytes = fs::read(path)?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(error(format!("{}: not an npy file", where_)));
    }
    let (length, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    if bytes.len() < start + length {
        return Err(error(format!("{}: truncated npy header", where_)));
    }
    let header = String::from_utf8_lossy(&bytes[start..start + length]).to_string();
    let field = |key: &str| -> Result<String> {
        let at = header.find(&format!("'{}':", key)).ok_or_else(|| error(format!("{}: npy header lacks {}", where_, key)))?;
        Ok(header[at + key.len() + 3..].to_string())
    };
    let descr = field("descr")?;
    let descr = descr.split('\'').nth(1).unwrap_or("").to_string();
    let dtype = match descr.as_str() {
        "<f4" => "float32",
        "<f8" => "float64",
        "|i1" => "int8",
        "|u1" => "uint8",
        "<i4" => "int32",
        "<i8" => "int64",
        "|b1" => "bool",
        _ => return Err(error(format!("{}: unsupported npy dtype {}", where_, descr))),
    };
    if header.contains("'fortran_order': True") {
        return Err(error(format!("{}: Fortran-ordered npy not supported", where_)));
    }
    let dims = field("shape")?;
    let dims = &dims[dims.find('(').unwrap_or(0) + 1..dims.find(')').unwrap_or(0)];
    let shape: Vec<usize> = dims.split(',').filter_map(|d| d.trim().parse().ok()).collect();
    let n = count(&shape) * itemsize(dtype)?;
    let data = &bytes[start + length..];
    if data.len() < n {
        return Err(error(format!("{}: truncated npy data", where_)));
    }
    Ok(Array { dtype: dtype.into(), shape, bytes: data[..n].to_vec() })
}

/// The text format: "# dtype: float32; shape: 21 589 7", then the values.
pub fn read_txt(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let text = fs::read_to_string(path)?;
    let (header, body) = text.split_once('\n').unwrap_or((&text, ""));
    let bad = || error(format!("{}: bad header '{}' (want '# dtype: float32; shape: 21 589 7')", path.display(), header));
    let mut dtype = None;
    let mut shape = None;
    for part in header.trim_start_matches('#').split(';') {
        let (key, value) = part.split_once(':').ok_or_else(bad)?;
        match key.trim() {
            "dtype" => dtype = Some(value.trim().to_string()),
            "shape" => shape = Some(value.split_whitespace().map(|d| d.parse::<usize>()).collect::<std::result::Result<Vec<_>, _>>().map_err(|_| bad())?),
            _ => {}
        }
    }
    let (dtype, shape) = (dtype.ok_or_else(bad)?, shape.ok_or_else(bad)?);
    let size = itemsize(&dtype)?;
    let mut bytes = Vec::with_capacity(count(&shape) * size);
    let mut n = 0;
    for token in body.split_whitespace() {
        let lower = token.to_ascii_lowercase();
        if dtype.starts_with("float") {
            let value: f64 = lower.parse().map_err(|_| error(format!("{}: bad value {}", path.display(), token)))?;
            if size == 4 {
                bytes.extend_from_slice(&(value as f32).to_le_bytes());
            } else {
                bytes.extend_from_slice(&value.to_le_bytes());
            }
        } else {
            let value: i64 = lower.parse().map_err(|_| error(format!("{}: bad value {}", path.display(), token)))?;
            bytes.extend_from_slice(&value.to_le_bytes()[..size]);
        }
        n += 1;
    }
    if n != count(&shape) {
        return Err(error(format!("{}: header says {} values, file has {}", path.display(), count(&shape), n)));
    }
    Ok(Array { dtype, shape, bytes })
}

/// One recording's dump (the reference's, or any side's): `load(stage, name)`.
pub struct Reader {
    pub path: PathBuf,
    pub manifest: String,
}

impl Reader {
    pub fn open(path: impl AsRef<Path>) -> Result<Reader> {
        let path = path.as_ref().to_path_buf();
        let manifest = fs::read_to_string(path.join("manifest.json")).map_err(|_| {
            error(format!("{}: no manifest.json (not a dump, or an interrupted one)", path.display()))
        })?;
        Ok(Reader { path, manifest })
    }

    /// A top-level string value of manifest.json ("uri", "audio_sha256", ...).
    pub fn manifest_string(&self, key: &str) -> Option<String> {
        let at = self.manifest.find(&format!("\"{}\":", key))?;
        let rest = &self.manifest[at + key.len() + 3..];
        let rest = &rest[rest.find('"')? + 1..];
        let mut value = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(value),
                '\\' => value.push(chars.next()?),
                c => value.push(c),
            }
        }
        None
    }

    pub fn has(&self, stage: &str, name: &str) -> bool {
        ["", ".npy", ".txt"].iter().any(|suffix| self.path.join(stage).join(format!("{}{}", name, suffix)).is_file())
    }

    /// Names dumped for a stage (without .npy/.txt; .rttm files keep their suffix), sorted.
    pub fn names(&self, stage: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(self.path.join(stage)) {
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().to_string();
                if let Some(stem) = file.strip_suffix(".npy").or_else(|| file.strip_suffix(".txt")) {
                    out.push(stem.to_string());
                } else if file.ends_with(".rttm") {
                    out.push(file);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    pub fn load(&self, stage: &str, name: &str) -> Result<Array> {
        let folder = self.path.join(stage);
        let npy = folder.join(format!("{}.npy", name));
        if npy.is_file() {
            return read_npy(npy);
        }
        let txt = folder.join(format!("{}.txt", name));
        if txt.is_file() {
            return read_txt(txt);
        }
        Err(error(format!("{}: {}/{} missing", self.path.display(), stage, name)))
    }

    pub fn load_text(&self, stage: &str, name: &str) -> Result<String> {
        fs::read_to_string(self.path.join(stage).join(name))
    }
}
