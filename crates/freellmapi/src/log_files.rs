//! Log files (`LOG_DIR`): the same lines as standard output, also appended to `LOG_DIR/freellmapi-YYYY-MM-DD.log`, one
//! file per UTC day, and files older than `LOG_RETENTION_DAYS` deleted when a day's file is opened. Written by the
//! `log-flush` thread only (see [`crate::logging`]), never on the request path.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const PREFIX: &str = "freellmapi-";
const SUFFIX: &str = ".log";

/// Where and how long log files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFiles {
    pub dir: PathBuf,
    /// Days of files kept besides today's; 0 keeps them all.
    pub retention_days: u64,
}

/// The open file of the current day.
#[derive(Debug)]
pub struct DailyFile {
    config: LogFiles,
    day: Option<u64>,
    file: Option<File>,
}

/// The UTC day index (days since 1970-01-01) of now.
pub fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// `YYYY-MM-DD` of a day index (the civil calendar, proleptic Gregorian).
pub fn date_of(day: u64) -> String {
    // Howard Hinnant's days-to-civil.
    let z = day as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn file_name(day: u64) -> String {
    format!("{PREFIX}{}{SUFFIX}", date_of(day))
}

impl DailyFile {
    /// Creates the directory if needed (an error here stops the start: the operator asked for files).
    pub fn new(config: LogFiles) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        Ok(Self {
            config,
            day: None,
            file: None,
        })
    }

    /// Appends `bytes` to the file of `day`, opening it (and pruning old files) when the day changed.
    pub fn write(&mut self, bytes: &[u8], day: u64) -> std::io::Result<()> {
        if self.day != Some(day) || self.file.is_none() {
            let path = self.config.dir.join(file_name(day));
            self.file = Some(OpenOptions::new().create(true).append(true).open(path)?);
            self.day = Some(day);
            self.prune(day);
        }
        match &mut self.file {
            Some(f) => f.write_all(bytes),
            None => Ok(()),
        }
    }

    /// Deletes this gateway's log files older than the retention (other files in the directory are left alone).
    fn prune(&self, today: u64) {
        if self.config.retention_days == 0 {
            return;
        }
        let oldest_kept = date_of(today.saturating_sub(self.config.retention_days));
        let Ok(entries) = std::fs::read_dir(&self.config.dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(date) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|n| n.strip_suffix(SUFFIX))
            else {
                continue;
            };
            // ISO dates compare as strings.
            if date.len() == 10 && date < oldest_kept.as_str() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_day_indexes() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(20_454), "2026-01-01");
        assert_eq!(date_of(20_513), "2026-03-01");
        assert_eq!(date_of(19_782), "2024-02-29");
    }

    #[test]
    fn one_file_per_day_and_old_ones_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let mut f = DailyFile::new(LogFiles {
            dir: logs.clone(),
            retention_days: 2,
        })
        .unwrap();
        // Someone else's file in the directory is never touched.
        std::fs::write(logs.join("other.log"), "x").unwrap();
        std::fs::write(logs.join("freellmapi-2025-12-01.log"), "old\n").unwrap();
        let day = 20_454; // 2026-01-01
        f.write(b"one\n", day).unwrap();
        f.write(b"two\n", day).unwrap();
        f.write(b"three\n", day + 1).unwrap();
        f.write(b"four\n", day + 3).unwrap();
        let read = |d: u64| std::fs::read_to_string(logs.join(file_name(d))).ok();
        assert_eq!(
            read(day),
            None,
            "pruned: more than 2 days older than the newest"
        );
        assert_eq!(read(day + 1).as_deref(), Some("three\n"));
        assert_eq!(read(day + 3).as_deref(), Some("four\n"));
        assert!(!logs.join("freellmapi-2025-12-01.log").exists());
        assert!(logs.join("other.log").exists());
        // Retention 0 keeps everything.
        let mut keep = DailyFile::new(LogFiles {
            dir: logs.clone(),
            retention_days: 0,
        })
        .unwrap();
        keep.write(b"five\n", day + 400).unwrap();
        assert_eq!(read(day + 1).as_deref(), Some("three\n"));
    }
}
