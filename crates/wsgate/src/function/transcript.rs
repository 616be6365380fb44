//! One process's transcript: the lines it writes to stdout and stderr, and the lines the gateway
//! writes about its invocations (`START`, `END`, `REPORT`: see [`super::report`]), logged by one
//! task, so that an invocation's output falls between its `START` and its `END`.
//!
//! Why one task that drains the pipes before each gateway line is enough: a process writes to a
//! pipe synchronously (Python with `-u`, Node's stdout on a pipe, any `write(2)`), so what it wrote
//! before posting its answer is in the pipe when the answer arrives; the reactor has seen the pipe
//! become readable no later than the socket the answer came on. Reading the pipes until they would
//! block, then logging `END`, puts every line of the invocation before it. `START` is logged
//! before `/next` answers (the caller waits for it), so no line of the invocation can come before
//! it.

use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use super::report::Closing;

/// At most this many pipe lines are read before one gateway line: a process that writes without
/// end still gets its `END` logged.
const DRAIN_LINES: usize = 10_000;
/// How long `/next` waits for its `START` to be logged (normally microseconds); past it, the
/// invocation goes on and only the order of its lines may suffer.
const START_WAIT: Duration = Duration::from_millis(250);

/// Lines for the log, in order, once the pipes have been read up to now.
#[derive(Debug)]
struct Entry {
    lines: Vec<String>,
    /// `END` and `REPORT` of an answered invocation, made when they are logged.
    answered: Option<Closing>,
    logged: Option<oneshot::Sender<()>>,
}

/// Where the gateway writes lines about one process's invocations. The task that logs them ends
/// when every `Transcript` of the process is dropped and its pipes are closed.
#[derive(Debug, Clone)]
pub(super) struct Transcript {
    // Unbounded: a process runs one invocation at a time, so at most its `START` and its
    // `END`/`REPORT` wait here.
    entries: mpsc::UnboundedSender<Entry>,
}

impl Transcript {
    /// Starts logging `function`'s process's `stdout` and `stderr`.
    pub(super) fn start<O, E>(function: String, stdout: Option<O>, stderr: Option<E>) -> Self
    where
        O: AsyncRead + Unpin + Send + 'static,
        E: AsyncRead + Unpin + Send + 'static,
    {
        let (entries, received) = mpsc::unbounded_channel();
        let stdout = stdout.map(|pipe| BufReader::new(pipe).lines());
        let stderr = stderr.map(|pipe| BufReader::new(pipe).lines());
        tokio::spawn(run(function, stdout, stderr, received));
        Self { entries }
    }

    /// Logs `lines` after everything the process wrote so far.
    pub(super) fn write(&self, lines: Vec<String>) {
        let _ = self.entries.send(Entry {
            lines,
            answered: None,
            logged: None,
        });
    }

    /// Logs the `END` and `REPORT` of an answered invocation after everything the process wrote
    /// so far; its peak memory is read then.
    pub(super) fn answered(&self, answered: Closing) {
        let _ = self.entries.send(Entry {
            lines: Vec::new(),
            answered: Some(answered),
            logged: None,
        });
    }

    /// Logs `lines` after everything the process wrote so far, and returns once they are logged
    /// (or after [`START_WAIT`]).
    pub(super) async fn write_now(&self, lines: Vec<String>) {
        let (logged, done) = oneshot::channel();
        let entry = Entry {
            lines,
            answered: None,
            logged: Some(logged),
        };
        if self.entries.send(entry).is_ok() {
            let _ = tokio::time::timeout(START_WAIT, done).await;
        }
    }
}

type Pipe<R> = Option<Lines<BufReader<R>>>;

/// A line of the function's log: the process's own, or the gateway's about an invocation (the
/// same target, level and fields, so one filter finds both).
fn log(function: &str, line: &str) {
    info!(target: "wsgate::function::log", function = %function, "{line}");
}

async fn run<O, E>(
    function: String,
    mut stdout: Pipe<O>,
    mut stderr: Pipe<E>,
    mut entries: mpsc::UnboundedReceiver<Entry>,
) where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            line = next_line(&mut stdout), if stdout.is_some() => match line {
                Some(line) => log(&function, &line),
                None => stdout = None,
            },
            line = next_line(&mut stderr), if stderr.is_some() => match line {
                Some(line) => log(&function, &line),
                None => stderr = None,
            },
            entry = entries.recv(), if open => match entry {
                Some(entry) => {
                    // Unconstrained: tokio's cooperative budget would otherwise make a ready
                    // pipe look empty after a hundred lines or so.
                    tokio::task::unconstrained(async {
                        drain(&function, &mut stdout, &mut stderr);
                    })
                    .await;
                    for line in &entry.lines {
                        log(&function, line);
                    }
                    for line in entry.answered.iter().flat_map(Closing::lines) {
                        log(&function, &line);
                    }
                    if let Some(logged) = entry.logged {
                        let _ = logged.send(());
                    }
                }
                None => open = false,
            },
            else => break,
        }
    }
}

/// The next line of a pipe; `None` at its end (or when it cannot be read).
async fn next_line<R: AsyncRead + Unpin>(pipe: &mut Pipe<R>) -> Option<String> {
    pipe.as_mut()?.next_line().await.ok().flatten()
}

/// Logs the lines both pipes hold now, without waiting for more.
fn drain<O, E>(function: &str, stdout: &mut Pipe<O>, stderr: &mut Pipe<E>)
where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    for _ in 0..DRAIN_LINES {
        if !(ready_line(function, stdout) || ready_line(function, stderr)) {
            return;
        }
    }
}

/// Logs one line if the pipe has one ready; false when it has none now (or has ended).
fn ready_line<R: AsyncRead + Unpin>(function: &str, pipe: &mut Pipe<R>) -> bool {
    let Some(lines) = pipe.as_mut() else {
        return false;
    };
    // `next_line` is cancel safe: a partial line stays buffered for the next read.
    match lines.next_line().now_or_never() {
        Some(Ok(Some(line))) => {
            log(function, &line);
            true
        }
        Some(Ok(None) | Err(_)) => {
            *pipe = None;
            false
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// The messages logged while it runs, in order.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    #[tokio::test]
    async fn what_the_process_wrote_before_a_gateway_line_is_logged_before_it() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_target(false)
            .with_level(false)
            .without_time()
            .with_ansi(false)
            .finish();
        // A current-thread runtime: the transcript's task logs on this thread.
        let _guard = tracing::subscriber::set_default(subscriber);
        let (mut stdout, stdout_end) = tokio::io::duplex(1 << 16);
        let (mut stderr, stderr_end) = tokio::io::duplex(1 << 16);
        let transcript = Transcript::start("f".to_owned(), Some(stdout_end), Some(stderr_end));
        transcript.write_now(vec!["START".into()]).await;
        for i in 0..300 {
            stdout
                .write_all(format!("out {i}\n").as_bytes())
                .await
                .expect("write");
        }
        stderr.write_all(b"err\npartial").await.expect("write");
        // Many lines: more than tokio's cooperative budget lets one poll read.
        transcript
            .write_now(vec!["END".into(), "REPORT".into()])
            .await;
        let lines = captured.lines();
        let messages: Vec<&str> = lines
            .iter()
            .map(|l| {
                l.trim()
                    .trim_end_matches(" function=\"f\"")
                    .trim_end_matches(" function=f")
            })
            .collect();
        assert_eq!(messages.first(), Some(&"START"));
        assert_eq!(messages.len(), 1 + 300 + 1 + 2, "{messages:?}");
        assert_eq!(&messages[messages.len() - 2..], ["END", "REPORT"]);
        assert!(messages.contains(&"out 299") && messages.contains(&"err"));
        // A line without its newline waits for the rest.
        assert!(!messages.iter().any(|m| m.contains("partial")));
    }
}
