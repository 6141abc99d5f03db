//! The `freellmapi` binary's library half: the command line and environment (`cli`), the declarative TOML file
//! (`declarative`), logging set-up, the start-up sequence (`startup`), the
//! `proxies find` tool (`proxies_find`), the `healthcheck` probe and the import from the Node original
//! (`migrate_old`). Kept as a library so tests can drive
//! start-up without spawning processes.

pub mod cli;
pub mod declarative;
pub mod healthcheck;
pub mod log_files;
pub mod log_line;
pub mod logging;
pub mod migrate_old;
pub mod proxies_find;
pub mod startup;
