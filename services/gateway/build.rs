//! Embeds the built web client (`web/dist`) into the gateway, so one binary
//! serves the page with no files beside it. Without a build, a placeholder
//! page says how to make one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

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
    let mut table = String::from("pub static ASSETS: &[(&str, &[u8], &str)] = &[\n");
    for path in &found {
        let Ok(relative) = path.strip_prefix(&dist) else {
            continue;
        };
        let route = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
        let absolute = path.canonicalize().expect("a file we just listed");
        writeln!(
            table,
            "    ({route:?}, include_bytes!({:?}), {:?}),",
            absolute.display().to_string(),
            content_type(path)
        )
        .expect("writing to a String");
    }
    table.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it"));
    fs::write(out.join("web_assets.rs"), table).expect("write web_assets.rs");
}
