//! Resumable sessions kept across a restart (`gateway.state_dir`): what a suspended session is
//! made of, written to `sessions.redb` in that folder when the gateway stops and read back (and
//! removed) when a gateway starts on the same folder. The file is opened only for those two
//! moments, so the next process can open it as soon as the previous one has exited.
//!
//! The file says what it is (a `format` entry); a file that is not one of ours, or is damaged,
//! is refused with a message naming it, and the gateway does not start.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use wsgate_core::event::ConnectionContext;

/// What a suspended session is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saved {
    /// The connection's fixed context.
    pub ctx: ConnectionContext,
    /// Its groups.
    pub groups: Vec<String>,
    /// Its user.
    pub user: Option<String>,
    /// The token its client resumes with.
    pub token: String,
    /// The last `seq` given out.
    pub last_seq: u64,
    /// Messages up to this `seq` were dropped unacknowledged.
    pub dropped_to: u64,
    /// The messages kept for the resume, as sent (numbered envelopes).
    pub kept: Vec<(u64, String)>,
    /// Epoch ms of its latest activity.
    pub last_active_ms: u64,
    /// Epoch ms when its socket went away: its resume window runs from there.
    pub suspended_at_ms: u64,
    /// The close code `$disconnect` is told if the client never comes back.
    pub code: u16,
}

const FILE: &str = "sessions.redb";
const FORMAT: &str = "wsgate-sessions-1";
const META: TableDefinition<&str, &str> = TableDefinition::new("wsgate.meta");
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("wsgate.sessions");

fn file(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Opens (or creates) the state file, refusing one that is not ours.
fn open(dir: &Path) -> Result<Database, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create gateway.state_dir {}: {e}", dir.display()))?;
    let path = file(dir);
    let existed = path.exists();
    let db = Database::create(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| fail(&e))?;
        let format = meta
            .get("format")
            .map_err(|e| fail(&e))?
            .map(|v| v.value().to_owned());
        match format {
            Some(f) if f == FORMAT => {}
            Some(other) => {
                return Err(format!(
                    "{} is a wsgate state file of another format ({other}, expected {FORMAT})",
                    path.display()
                ));
            }
            None if existed => {
                return Err(format!(
                    "{} is not a wsgate state file: move it away or point gateway.state_dir elsewhere",
                    path.display()
                ));
            }
            None => {
                meta.insert("format", FORMAT).map_err(|e| fail(&e))?;
            }
        }
        txn.open_table(SESSIONS).map_err(|e| fail(&e))?;
    }
    txn.commit().map_err(|e| fail(&e))?;
    Ok(db)
}

/// Reads every saved session and removes them from the file.
pub fn take(dir: &Path) -> Result<Vec<Saved>, String> {
    let db = open(dir)?;
    let path = file(dir);
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut sessions = Vec::new();
    {
        let read = db.begin_read().map_err(|e| fail(&e))?;
        let table = read.open_table(SESSIONS).map_err(|e| fail(&e))?;
        for entry in table.iter().map_err(|e| fail(&e))? {
            let (token, value) = entry.map_err(|e| fail(&e))?;
            match serde_json::from_slice::<Saved>(value.value()) {
                Ok(saved) => sessions.push(saved),
                Err(e) => {
                    tracing::warn!(token = token.value(), %e, "a saved session could not be read; left out")
                }
            }
        }
    }
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    txn.delete_table(SESSIONS).map_err(|e| fail(&e))?;
    txn.commit().map_err(|e| fail(&e))?;
    Ok(sessions)
}

/// Writes `sessions` (replacing any with the same token).
pub fn put(dir: &Path, sessions: &[Saved]) -> Result<(), String> {
    let db = open(dir)?;
    let path = file(dir);
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let txn = db.begin_write().map_err(|e| fail(&e))?;
    {
        let mut table = txn.open_table(SESSIONS).map_err(|e| fail(&e))?;
        for saved in sessions {
            let value = serde_json::to_vec(saved).map_err(|e| fail(&e))?;
            table
                .insert(saved.token.as_str(), value.as_slice())
                .map_err(|e| fail(&e))?;
        }
    }
    txn.commit().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(token: &str) -> Saved {
        Saved {
            ctx: crate::hub::tests::context(),
            groups: vec!["room".into()],
            user: Some("alice".into()),
            token: token.into(),
            last_seq: 3,
            dropped_to: 0,
            kept: vec![(3, r#"{"type":"message","seq":3,"data":"x"}"#.into())],
            last_active_ms: 2,
            suspended_at_ms: 3,
            code: 1012,
        }
    }

    #[test]
    fn sessions_are_kept_then_taken_once() {
        let dir = tempfile::tempdir().expect("dir");
        let state = dir.path().join("state");
        let sessions = [saved("a"), saved("b")];
        put(&state, &sessions).expect("put");
        let mut taken = take(&state).expect("take");
        taken.sort_by(|x, y| x.token.cmp(&y.token));
        let json = |s: &Saved| serde_json::to_string(s).expect("json");
        assert_eq!(
            taken.iter().map(json).collect::<Vec<_>>(),
            sessions.iter().map(json).collect::<Vec<_>>()
        );
        assert!(take(&state).expect("again").is_empty());
    }

    #[test]
    fn foreign_and_damaged_files_are_refused_with_their_name() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(FILE), b"not a database at all").expect("write");
        let error = take(dir.path()).expect_err("damaged");
        assert!(error.contains("sessions.redb"), "{error}");

        let other = tempfile::tempdir().expect("dir");
        {
            let db = Database::create(other.path().join(FILE)).expect("create");
            let txn = db.begin_write().expect("txn");
            txn.open_table(TableDefinition::<&str, u64>::new("theirs"))
                .expect("table");
            txn.commit().expect("commit");
        }
        let error = take(other.path()).expect_err("foreign");
        assert!(error.contains("is not a wsgate state file"), "{error}");
    }
}
