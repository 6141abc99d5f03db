//! Stamps the binary with the commit it was built from and the day it was built, for `freellmapi --version`.
//!
//! - Commit: `FREELLMAPI_GIT_COMMIT` when set (container and release builds, which have no `.git`), else
//!   `git rev-parse --short HEAD`, else `unknown`.
//! - Date (UTC, `YYYY-MM-DD`): `SOURCE_DATE_EPOCH` when set (reproducible builds), else today.
//!
//! It reruns only when one of those variables changes or HEAD moves (a checkout, or a commit on the current
//! branch), so an ordinary edit-build cycle never runs git.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FREELLMAPI_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let commit = match std::env::var("FREELLMAPI_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => short(c.trim()),
        _ => {
            watch_head();
            git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    let seconds = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=FREELLMAPI_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=FREELLMAPI_BUILD_DATE={}", date(seconds));
}

/// At most 12 characters of a commit id given from outside (a full SHA from CI, say), and only hex digits.
fn short(commit: &str) -> String {
    let hex: String = commit
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    if hex.is_empty() {
        "unknown".to_owned()
    } else {
        hex
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Reruns when HEAD changes (checkout) or the branch it names moves (commit). Works in worktrees, where these
/// files live outside the work tree. Only existing paths are named: cargo treats a missing one as always stale.
fn watch_head() {
    let mut paths = Vec::new();
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        paths.push(head);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(reference) = git(&["rev-parse", "--git-path", &branch]) {
            paths.push(reference);
        }
    }
    if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        paths.push(packed);
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    for path in paths {
        // git answers relative to the current directory, which for a build script is the package's.
        let path = manifest.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time, by the proleptic Gregorian calendar (Howard Hinnant's days-to-civil).
fn date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
