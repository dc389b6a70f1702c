// Test driver for writers/pyannote_dump.rs: read every array of one recording's dump
// (npy or txt) and write it again with the Rust writer, as a port would write its outputs.
//   copy_dump SOURCE_RECORDING OUT_ROOT SIDE npy|txt [abort]
// "abort" fails before commit: nothing may appear under OUT_ROOT/SIDE.
//   copy_dump sha256 FILE      prints sha256_file(FILE)
#[path = "../../writers/pyannote_dump.rs"]
mod pyannote_dump;

use pyannote_dump::{Array, Element, Format, Manifest, Reader, Writer, STAGES};
use std::io::{Error, ErrorKind, Result};
use std::path::Path;

fn copy_as<T: Element>(out: &mut Writer, stage: &str, name: &str, a: &Array) -> Result<()> {
    out.write(stage, name, &a.to_vec::<T>()?, &a.shape)
}

fn run(args: &[String]) -> Result<()> {
    let source = Reader::open(&args[1])?;
    let recording = Path::new(&args[1]).file_name().unwrap().to_string_lossy().to_string();
    let format = if args[4] == "txt" { Format::Txt } else { Format::Npy };
    let mut out = Writer::new(&args[2], &args[3], &recording, format)?;
    for stage in STAGES {
        for name in source.names(stage) {
            if name.ends_with(".rttm") {
                out.write_text(stage, &name, &source.load_text(stage, &name)?)?;
                continue;
            }
            let a = source.load(stage, &name)?;
            match a.dtype.as_str() {
                "float32" => copy_as::<f32>(&mut out, stage, &name, &a)?,
                "float64" => copy_as::<f64>(&mut out, stage, &name, &a)?,
                "int8" => copy_as::<i8>(&mut out, stage, &name, &a)?,
                "uint8" => copy_as::<u8>(&mut out, stage, &name, &a)?,
                "int32" => copy_as::<i32>(&mut out, stage, &name, &a)?,
                "int64" => copy_as::<i64>(&mut out, stage, &name, &a)?,
                other => return Err(Error::new(ErrorKind::InvalidData, format!("{}/{}: dtype {}", stage, name, other))),
            }
        }
    }
    if args.len() > 5 && args[5] == "abort" {
        return Err(Error::new(ErrorKind::Other, "aborted on purpose"));
    }
    let mut manifest = Manifest::new();
    manifest.set_str("uri", &source.manifest_string("uri").unwrap_or_default());
    manifest.set_str("audio_sha256", &source.manifest_string("audio_sha256").unwrap_or_default());
    manifest.set_str("models", "fixture");
    out.commit(manifest)?;
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "sha256" {
        match pyannote_dump::sha256_file(&args[2]) {
            Ok(hex) => println!("{}", hex),
            Err(e) => {
                eprintln!("error: {}", e);
                std::process::exit(1);
            }
        }
        return;
    }
    if args.len() < 5 {
        eprintln!("usage: copy_dump SOURCE OUT_ROOT SIDE npy|txt [abort]");
        std::process::exit(2);
    }
    if let Err(e) = run(&args) {
        eprintln!("error: {}", e);
        std::process::exit(1);
    }
}
