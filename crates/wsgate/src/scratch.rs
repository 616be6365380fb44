//! Private folders under the system's temporary directory, for what wsgate writes there (the
//! development CA of `wsgate dev`, the built-in bootstraps of local functions).
//!
//! The temporary directory is shared with every local user, so a folder there is made atomically
//! with an unpredictable name (`mkdir` fails on anything already there, a planted symlink
//! included), mode 0700, never reused, and removed when its [`TempDir`] is dropped. Files in it are
//! created new (`O_EXCL`): never written through a symlink nor over an existing file.

use std::io::Write;
use std::path::Path;

use tempfile::TempDir;

/// A new folder `{temp}/{prefix}XXXXXXXXXX` that only this user can enter; it is removed, with
/// what it holds, when the result is dropped.
pub fn private_dir(prefix: &str) -> std::io::Result<TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// Writes `contents` to a file that must not exist yet (a symlink counts as existing).
pub fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?
        .write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_dirs_are_0700_unique_and_removed_when_dropped() {
        let a = private_dir("wsgate-scratch-test-").expect("a");
        let b = private_dir("wsgate-scratch-test-").expect("b");
        assert_ne!(a.path(), b.path());
        for dir in [&a, &b] {
            let meta = std::fs::symlink_metadata(dir.path()).expect("metadata");
            assert!(meta.is_dir(), "a real folder, not a symlink");
            assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
            assert_eq!(dir.path().parent(), Some(std::env::temp_dir().as_path()));
            let name = dir.path().file_name().expect("name").to_string_lossy();
            let suffix = name.strip_prefix("wsgate-scratch-test-").expect("prefix");
            assert!(suffix.len() >= 6, "an unpredictable part: {name}");
        }
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists(), "removed when dropped");
    }

    #[test]
    fn write_new_refuses_an_existing_file_or_a_planted_symlink() {
        let dir = private_dir("wsgate-scratch-test-").expect("dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").expect("victim");
        let planted = dir.path().join("planted");
        std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
        assert!(write_new(&planted, b"overwritten").is_err());
        assert!(write_new(&victim, b"overwritten").is_err());
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "precious");
        let fresh = dir.path().join("fresh");
        write_new(&fresh, b"new").expect("a new file");
        assert_eq!(std::fs::read(&fresh).expect("read"), b"new");
    }
}
