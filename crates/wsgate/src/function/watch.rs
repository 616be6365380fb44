//! Restarting a function's processes when its code changes: the folder is polled (no platform
//! watcher to install or run out of), and the newest modification time decides.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

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

/// Files that are not code: logs (`wsgate dev > dev.log` in the project folder would otherwise
/// restart the functions at every line it logs), hidden files, editors' swap and backup files,
/// compiled Python.
fn is_scratch(name: &str) -> bool {
    const EXTENSIONS: &[&str] = &["log", "swp", "swo", "swx", "tmp", "pyc"];
    name.starts_with('.')
        || name.ends_with('~')
        || name
            .rsplit_once('.')
            .is_some_and(|(_, extension)| EXTENSIONS.contains(&extension))
}

/// The newest modification time of the code under `dir`.
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
            if is_scratch(&entry.file_name().to_string_lossy()) {
                continue;
            }
            if let Ok(modified) = meta.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

/// Polls `dir` until `stop`, calling `on_change` when the code changed; stops when `on_change`
/// returns false (its pool is gone).
pub(super) fn spawn(
    on_change: impl Fn() -> bool + Send + 'static,
    dir: PathBuf,
    stop: CancellationToken,
) {
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
                if !on_change() {
                    return;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_and_editor_files_are_not_code() {
        let dir = std::env::temp_dir().join(format!("wsgate-watch-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("src")).expect("dir");
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let write = |name: &str, secs| {
            let path = dir.join(name);
            std::fs::write(&path, "x").expect("write");
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(at(secs)).expect("mtime");
        };
        write("src/app.py", 1_000);
        assert_eq!(newest(&dir), Some(at(1_000)));
        for scratch in [
            "dev.log",
            ".app.py.swp",
            "app.py~",
            "src/app.pyc",
            ".DS_Store",
        ] {
            write(scratch, 2_000);
        }
        assert_eq!(newest(&dir), Some(at(1_000)), "only scratch files changed");
        write("src/app.py", 3_000);
        assert_eq!(newest(&dir), Some(at(3_000)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
