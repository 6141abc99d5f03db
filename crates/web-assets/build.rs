//! Builds the dashboard (`web/`) with npm when it can and embeds the result; without Node.js or npm, or when the
//! build fails, embeds a page that says how to get the dashboard, so the binary always builds.
//!
//! `FREELLMAPI_WEB_DIST=<dir>` embeds an already built directory instead; `FREELLMAPI_SKIP_WEB_BUILD=1` skips the
//! npm build (the fallback page is embedded unless `FREELLMAPI_WEB_DIST` is set).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let web = manifest.join("../../web");
    // Only paths that exist: cargo treats a missing one as always stale, which would rebuild on every run.
    let inputs = [
        "src",
        "index.html",
        "public",
        // Not package-lock.json: `npm install` rewrites it on every run, which would rebuild forever.
        "package.json",
        "vite.config.ts",
        "tsconfig.json",
    ];
    for path in inputs.iter().map(|p| web.join(p)).filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rerun-if-env-changed=FREELLMAPI_WEB_DIST");
    println!("cargo:rerun-if-env-changed=FREELLMAPI_SKIP_WEB_BUILD");

    let dist = match std::env::var_os("FREELLMAPI_WEB_DIST") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            println!("cargo:rerun-if-changed={}", dir.display());
            Some(dir)
        }
        None if std::env::var_os("FREELLMAPI_SKIP_WEB_BUILD").is_some() => None,
        None => build_with_npm(&web, &out.join("dist")),
    };
    let mut files = Vec::new();
    if let Some(dist) = dist.as_deref().filter(|d| d.join("index.html").is_file()) {
        collect(dist, dist, &mut files);
    }
    let mut code = String::from(
        "/// An embedded file: (URL path, bytes, gzip-compressed bytes when that is worth it).\n\
         pub type File = (&'static str, &'static [u8], Option<&'static [u8]>);\n\
         /// Every embedded file.\npub static FILES: &[File] = &[\n",
    );
    let gz_dir = out.join("gz");
    let _ = std::fs::create_dir_all(&gz_dir);
    for (n, (url, path)) in files.iter().enumerate() {
        let gz = gzip_if_worth_it(path, &gz_dir.join(format!("{n}.gz")))
            .map_or("None".to_owned(), |p| {
                format!("Some(include_bytes!({:?}))", p.display().to_string())
            });
        let _ = writeln!(
            code,
            "    ({url:?}, include_bytes!({:?}), {gz}),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let _ = writeln!(code, "/// Whether the real dashboard is embedded (false: only the fallback page).\npub const BUILT: bool = {};", !files.is_empty());
    if let Err(e) = std::fs::write(out.join("assets.rs"), code) {
        println!("cargo:warning=could not write the embedded asset table: {e}");
    }
}

/// Runs `npm install` (when `node_modules` is missing or older than package.json) and `npm run build` into
/// `dist`. `npm install` rather than `npm ci`: it installs what the lock file pins, but does not refuse a lock file
/// written with `omit-lockfile-registry-resolved` or without other platforms' optional packages.
fn build_with_npm(web: &Path, dist: &Path) -> Option<PathBuf> {
    if !web.join("package.json").is_file() {
        return None;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let modules = web.join("node_modules");
    let stale = match (
        mtime(&modules.join(".package-lock.json")),
        mtime(&web.join("package.json")),
    ) {
        (Some(installed), Some(lock)) => installed < lock,
        _ => true,
    };
    if stale {
        let ok = Command::new(npm)
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(web)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("cargo:warning=dashboard not built: `npm install` in web/ failed or npm is not installed; the binary serves a page explaining how to build it");
            return None;
        }
    }
    let dist_arg = dist.display().to_string();
    let ok = Command::new(npm)
        .args(["run", "build", "--", "--outDir", &dist_arg, "--emptyOutDir"])
        .current_dir(web)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("cargo:warning=dashboard not built: `npm run build` in web/ failed; the binary serves a page explaining how to build it");
        return None;
    }
    Some(dist.to_path_buf())
}

/// Text files of more than 1 KiB, gzip-compressed once here (best level) when that saves at least a tenth; the
/// server sends them to clients that accept gzip.
fn gzip_if_worth_it(path: &Path, out: &Path) -> Option<PathBuf> {
    use std::io::Write as _;
    let text = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("html" | "js" | "mjs" | "css" | "json" | "map" | "svg" | "txt")
    );
    let bytes = std::fs::read(path)
        .ok()
        .filter(|b| text && b.len() > 1024)?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&bytes).ok()?;
    let gz = encoder.finish().ok()?;
    (gz.len() * 10 <= bytes.len() * 9).then_some(())?;
    std::fs::write(out, gz).ok()?;
    Some(out.to_path_buf())
}

fn mtime(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(relative) = path.strip_prefix(root) {
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            let absolute = std::fs::canonicalize(&path).unwrap_or(path);
            files.push((url, absolute));
        }
    }
}
