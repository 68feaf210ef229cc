//! Embeds the built web client (`web/dist`) into the gateway, so one binary
//! serves the page with no files beside it. Without a build, a placeholder
//! page says how to make one.
//!
//! Each file is embedded as it is and, when it is text and compression pays,
//! compressed once here (brotli at its best quality, gzip at level 9), with a
//! strong ETag from its content: serving a file is choosing bytes, never
//! compressing them per request.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use sha2::{Digest as _, Sha256};

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// Whether the type compresses (text); images and fonts are compressed already.
fn compressible(kind: &str) -> bool {
    kind.starts_with("text/")
        || kind.starts_with("application/json")
        || kind.contains("+xml")
        || kind.contains("+json")
}

fn brotli(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        writer.write_all(raw).expect("brotli into memory");
    }
    out
}

fn gzip(raw: &[u8]) -> Vec<u8> {
    let mut writer = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    writer.write_all(raw).expect("gzip into memory");
    writer.finish().expect("gzip into memory")
}

/// A compressed variant, written to `out` and included from there; `None`
/// when it would not be smaller by at least a tenth.
fn variant(out: &Path, index: usize, suffix: &str, raw: &[u8], packed: Vec<u8>) -> String {
    if packed.len() * 10 > raw.len() * 9 {
        return "None".into();
    }
    let file = out.join(format!("asset-{index}.{suffix}"));
    fs::write(&file, packed).expect("write a compressed asset");
    format!("Some(include_bytes!({:?}))", file.display().to_string())
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dist = manifest.join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut found = Vec::new();
    files(&dist, &mut found);
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    let mut table = String::from("pub static ASSETS: &[Asset] = &[\n");
    for (index, path) in found.iter().enumerate() {
        let Ok(relative) = path.strip_prefix(&dist) else {
            continue;
        };
        let route = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
        let absolute = path.canonicalize().expect("a file we just listed");
        let raw = fs::read(&absolute).expect("read a file we just listed");
        let kind = content_type(path);
        let (br, gz) = if compressible(kind) {
            (
                variant(&out, index, "br", &raw, brotli(&raw)),
                variant(&out, index, "gz", &raw, gzip(&raw)),
            )
        } else {
            ("None".into(), "None".into())
        };
        let digest = Sha256::digest(&raw);
        let etag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        writeln!(
            table,
            "    Asset {{ route: {route:?}, kind: {kind:?}, etag: {etag:?}, raw: include_bytes!({:?}), br: {br}, gzip: {gz} }},",
            absolute.display().to_string(),
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    fs::write(out.join("web_assets.rs"), table).expect("write web_assets.rs");
}
