//! Restarting a function's processes when its code changes: the folder is polled (no platform
//! watcher to install or run out of), and the newest modification time decides.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::pool::Pool;

/// How often the code folder is scanned: "the next message runs the new code" within a second.
const EVERY: Duration = Duration::from_millis(250);
/// Files scanned at most, so a huge folder cannot make the scan expensive.
const MAX_FILES: usize = 20_000;
/// Folders that hold dependencies or caches, not the handler's code.
const SKIP: &[&str] = &[
    "node_modules",
    ".git",
    "__pycache__",
    "target",
    ".venv",
    "venv",
    ".serverless",
    ".aws-sam",
];

/// The newest modification time under `dir`.
fn newest(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(folder) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_FILES {
                return newest;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                let name = entry.file_name();
                if !SKIP.iter().any(|s| name == *s) && !name.to_string_lossy().starts_with('.') {
                    stack.push(entry.path());
                }
                continue;
            }
            if let Ok(modified) = meta.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

/// Polls `dir` until `stop`; tells the pool when the code changed.
pub(super) fn spawn(pool: Weak<Pool>, dir: PathBuf, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut last = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || newest(&dir)
        })
        .await
        .ok()
        .flatten();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(EVERY) => {}
            }
            let dir2 = dir.clone();
            let now = tokio::task::spawn_blocking(move || newest(&dir2))
                .await
                .ok()
                .flatten();
            if now != last {
                last = now;
                match pool.upgrade() {
                    Some(pool) => pool.code_changed(),
                    None => return,
                }
            }
        }
    });
}
