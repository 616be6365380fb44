//! One function's warm processes and its queue of invocations.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use wsgate_core::clock;

use super::error::FunctionError;
use super::peer::WorkerListener;
use super::report::{self, Status};
use super::runtime_api::{self, Invocation, Queue};
use super::spec::Spec;
use super::transcript::Transcript;
use super::watch;
use crate::metrics::FunctionMeter;

type Reply = oneshot::Sender<Result<Bytes, FunctionError>>;

/// An invocation waiting for a process.
#[derive(Debug)]
struct Job {
    invocation: Invocation,
    reply: Reply,
    /// Told when a process takes it: its timeout starts then, as Lambda's does.
    taken: oneshot::Sender<()>,
}

/// A job a process took, its reply kept in [`State::running`].
#[derive(Debug)]
struct Taken {
    invocation: Invocation,
    taken: oneshot::Sender<()>,
}

/// An invocation a process holds.
#[derive(Debug)]
struct Running {
    worker: u64,
    reply: Reply,
    /// When the process took it.
    since: Instant,
    /// The process's init duration, on its first invocation.
    init: Option<Duration>,
}

/// A spawned process.
#[derive(Debug, Clone)]
struct Process {
    pid: u32,
    spawned: Instant,
    /// Where its invocations' START, END and REPORT lines go, among its output.
    transcript: Transcript,
}

#[derive(Debug)]
struct Worker {
    /// Cancelled to kill the process.
    kill: CancellationToken,
    /// The code generation it was started for.
    generation: u64,
    /// The request it is running.
    busy: Option<String>,
    /// Still starting: it has not asked for work yet.
    starting: bool,
    /// Set once it is spawned.
    process: Option<Process>,
    /// How long it took to first ask for work, until its first invocation reports it.
    init: Option<Duration>,
}

#[derive(Debug, Default)]
struct State {
    workers: HashMap<u64, Worker>,
    /// Processes waiting in `/next`.
    idle: usize,
    /// Invocations processes hold, by request id.
    running: HashMap<String, Running>,
    stopped: bool,
    /// Processes in a row that ended (or could not start) before asking for work.
    failed_starts: u32,
    /// Until when no process is started after such failures, and why the last one failed:
    /// invocations meanwhile fail at once instead of waiting for a process that will not come.
    backoff: Option<(tokio::time::Instant, FunctionError)>,
}

/// The wait before starting a process again after the first start that failed; it doubles with
/// each failure in a row, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between starts that keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long an invocation may wait for a process to take it (a cold start, or a busy pool) when
/// its timeout is shorter: Lambda gives a function's init phase 10 s, outside its timeout.
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// One function's processes.
#[derive(Debug)]
pub struct Pool {
    spec: Spec,
    jobs: Mutex<VecDeque<Job>>,
    job_ready: Notify,
    state: Mutex<State>,
    next_worker: AtomicU64,
    generation: AtomicU64,
    stop: CancellationToken,
    meter: FunctionMeter,
}

impl Pool {
    /// A pool with no process yet (they start on the first invocation).
    pub fn start(spec: Spec, meter: FunctionMeter) -> Arc<Self> {
        let pool = Arc::new(Self {
            spec,
            jobs: Mutex::new(VecDeque::new()),
            job_ready: Notify::new(),
            state: Mutex::new(State::default()),
            next_worker: AtomicU64::new(1),
            generation: AtomicU64::new(0),
            stop: CancellationToken::new(),
            meter,
        });
        if pool.spec.watch {
            let weak = Arc::downgrade(&pool);
            let on_change = move || weak.upgrade().map(|pool| pool.code_changed()).is_some();
            watch::spawn(on_change, pool.spec.dir.clone(), pool.stop.clone());
        }
        pool
    }

    /// What the pool runs.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one invocation: the event in, the handler's raw JSON result out.
    pub async fn invoke(self: &Arc<Self>, payload: Vec<u8>) -> Result<Bytes, FunctionError> {
        self.meter.invocations.inc();
        let outcome = self.run(payload).await;
        if outcome.is_err() {
            self.meter.errors.inc();
        }
        outcome
    }

    async fn run(self: &Arc<Self>, payload: Vec<u8>) -> Result<Bytes, FunctionError> {
        if let Some(error) = self.backing_off() {
            return Err(error);
        }
        let (reply, result) = oneshot::channel();
        let (taken, was_taken) = oneshot::channel();
        let request_id = uuid_like();
        let timeout = self.spec.timeout;
        let job = Job {
            invocation: Invocation {
                request_id: request_id.clone(),
                payload: Bytes::from(payload),
                // Set when a process takes it.
                deadline_ms: 0,
                trace_id: trace_id(),
            },
            reply,
            taken,
        };
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
        self.job_ready.notify_one();
        self.scale_up();
        // A job dropped untaken has had its reply sent (an error) or dropped: `result` tells.
        // One that no process takes in time is skipped once its caller is gone.
        if tokio::time::timeout(timeout.max(INIT_LIMIT), was_taken)
            .await
            .is_err()
        {
            warn!(function = %self.spec.name, request_id, waited = ?timeout.max(INIT_LIMIT), "no process took the invocation in time");
            return Err(FunctionError::Timeout(timeout));
        }
        match tokio::time::timeout(timeout, result).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(FunctionError::Crashed("the invocation was dropped".into())),
            Err(_) => {
                self.timed_out(&request_id);
                Err(FunctionError::Timeout(timeout))
            }
        }
    }

    /// An invocation ran past its timeout: its lines are written as Lambda writes them, and the
    /// process that holds it is killed.
    fn timed_out(&self, request_id: &str) {
        let timeout = self.spec.timeout;
        let (running, process) = {
            let mut state = self.state();
            let Some(running) = state.running.remove(request_id) else {
                return;
            };
            let process = state
                .workers
                .get(&running.worker)
                .and_then(|w| w.process.clone());
            (running, process)
        };
        warn!(function = %self.spec.name, request_id, ?timeout, "invocation timed out; killing its process");
        if let Some(process) = process.filter(|_| report::enabled()) {
            let mut lines = vec![report::timed_out(clock::now_ms(), request_id, timeout)];
            // Read now: the process is killed next.
            let closing = self.closing(request_id, &running, Some(process.pid), Status::Timeout);
            lines.extend(closing.lines());
            process.transcript.write(lines);
        }
        self.kill(running.worker);
    }

    /// What the `END` and `REPORT` of an invocation that is over need; its peak memory is read
    /// from `pid` when the lines are made.
    fn closing(
        &self,
        request_id: &str,
        running: &Running,
        pid: Option<u32>,
        status: Status,
    ) -> report::Closing {
        report::Closing {
            request_id: request_id.to_owned(),
            pid,
            duration: running.since.elapsed(),
            memory_size: self.spec.memory_size,
            init: running.init,
            status,
        }
    }

    /// Why invocations fail at once now: the last processes ended before asking for work, none
    /// is running, and the wait before the next start has not passed.
    fn backing_off(&self) -> Option<FunctionError> {
        let state = self.state();
        let (until, error) = state.backoff.as_ref()?;
        (state.workers.is_empty() && tokio::time::Instant::now() < *until).then(|| error.clone())
    }

    /// Counts a failed start and returns how long to wait before the next one.
    fn start_failed(&self, error: &FunctionError) -> Duration {
        let mut state = self.state();
        state.failed_starts = state.failed_starts.saturating_add(1);
        let doublings = state.failed_starts.saturating_sub(1).min(16);
        let wait = FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF);
        state.backoff = Some((tokio::time::Instant::now() + wait, error.clone()));
        wait
    }

    /// Starts a process when more invocations wait than processes can take them.
    fn scale_up(self: &Arc<Self>) {
        let waiting = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).len();
        let worker = {
            let mut state = self.state();
            let starting = state.workers.values().filter(|w| w.starting).count();
            let waiting_out = state
                .backoff
                .as_ref()
                .is_some_and(|(until, _)| tokio::time::Instant::now() < *until);
            if state.stopped
                || waiting_out
                || waiting <= state.idle + starting
                || state.workers.len() >= self.spec.max_concurrency
            {
                return;
            }
            let id = self.next_worker.fetch_add(1, Ordering::Relaxed);
            let kill = CancellationToken::new();
            let generation = self.generation.load(Ordering::Acquire);
            state.workers.insert(
                id,
                Worker {
                    kill: kill.clone(),
                    generation,
                    busy: None,
                    starting: true,
                    process: None,
                    init: None,
                },
            );
            (id, kill)
        };
        let pool = self.clone();
        tokio::spawn(async move { pool.run_worker(worker.0, worker.1).await });
    }

    /// One process's life: its Runtime API listener, the process, and the clean-up after it.
    async fn run_worker(self: Arc<Self>, id: u64, kill: CancellationToken) {
        self.meter.cold_starts.inc();
        self.meter.processes.inc();
        let outcome = self.clone().serve_worker(id, kill.clone()).await;
        self.meter.processes.dec();
        let ended_on_purpose = kill.is_cancelled() || self.stop.is_cancelled();
        let (held, left, never_asked, process) = {
            let mut state = self.state();
            let worker = state.workers.remove(&id);
            let never_asked = worker.as_ref().is_some_and(|w| w.starting);
            let process = worker.and_then(|w| w.process);
            let held: Vec<String> = state
                .running
                .iter()
                .filter(|(_, running)| running.worker == id)
                .map(|(r, _)| r.clone())
                .collect();
            let held: Vec<_> = held
                .into_iter()
                .filter_map(|r| Some((state.running.remove(&r)?, r)))
                .collect();
            (held, state.workers.len(), never_asked, process)
        };
        let reason = match &outcome {
            Ok(status) => status.clone(),
            Err(e) => e.to_string(),
        };
        for (running, request_id) in held {
            if let Some(process) = process.as_ref().filter(|_| report::enabled()) {
                // The process is gone: its peak memory with it.
                let closing = self.closing(&request_id, &running, None, Status::Error);
                process.transcript.write(closing.lines().into());
            }
            let _ = running
                .reply
                .send(Err(FunctionError::Crashed(reason.clone())));
        }
        info!(function = %self.spec.name, worker = id, %reason, left, "function process ended");
        if never_asked && !ended_on_purpose {
            // It could not start, or ended before asking for work (a missing module, a wrong
            // handler): the waiting invocations would wait in vain, and starting it again at once
            // would fail the same way, as fast as it can.
            let error = match outcome {
                Err(error) => error,
                Ok(status) => FunctionError::Crashed(format!(
                    "{status} before asking for work (see the function's output above)"
                )),
            };
            let wait = self.start_failed(&error);
            warn!(
                function = %self.spec.name,
                %error,
                next_start_in = ?wait,
                "function process could not start: its invocations fail with 'Internal server error' until one does"
            );
            self.fail_queued(&error);
        } else if !never_asked {
            let mut state = self.state();
            state.failed_starts = 0;
            state.backoff = None;
        }
        // Someone may still be waiting for a process.
        if !self.stop.is_cancelled() {
            self.scale_up();
        }
    }

    async fn serve_worker(
        self: Arc<Self>,
        id: u64,
        kill: CancellationToken,
    ) -> Result<String, FunctionError> {
        let spawn_error = |error: String| FunctionError::Spawn {
            command: self.spec.command.join(" "),
            error,
        };
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| spawn_error(e.to_string()))?;
        let addr = listener
            .local_addr()
            .map_err(|e| spawn_error(e.to_string()))?;
        let spawned = Instant::now();
        let mut child = self
            .command(addr)
            .ok_or_else(|| spawn_error("no command".into()))?
            .spawn()
            .map_err(|e| spawn_error(e.to_string()))?;
        // The listener serves only once the process exists: its connections (and those of its
        // descendants) are let through, any other process's are closed. Connections made before
        // this wait in the listen queue.
        let Some(pid) = child.id() else {
            return Ok("exited at once".to_owned());
        };
        let name = self.spec.name.clone();
        // Known before the Runtime API serves: its first `/next` reads them.
        let transcript = Transcript::start(name.clone(), child.stdout.take(), child.stderr.take());
        if let Some(worker) = self.state().workers.get_mut(&id) {
            worker.process = Some(Process {
                pid,
                spawned,
                transcript,
            });
        }
        let listener = WorkerListener::new(listener, pid, name);
        let api = runtime_api::router(self.clone(), id, addr);
        let server_stop = CancellationToken::new();
        let stop_server = server_stop.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, api)
                .with_graceful_shutdown(stop_server.cancelled_owned())
                .await;
        });
        let status = tokio::select! {
            status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            () = kill.cancelled() => {
                let _ = child.kill().await;
                "killed".to_owned()
            }
            () = self.stop.cancelled() => {
                let _ = child.kill().await;
                "stopped".to_owned()
            }
        };
        server_stop.cancel();
        server.abort();
        Ok(status)
    }

    /// The command that starts a process whose Runtime API is at `addr`; `None` without a program.
    fn command(&self, addr: std::net::SocketAddr) -> Option<Command> {
        let (program, args) = self.spec.command.split_first()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&self.spec.dir)
            .envs(self.spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("local/[$LATEST]{}", hex::encode(rand::random::<[u8; 16]>())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Some(command)
    }

    /// The code changed: idle processes are replaced now, busy ones after their invocation.
    fn code_changed(&self) {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state();
        for worker in state.workers.values() {
            if worker.busy.is_none() && worker.generation < generation {
                worker.kill.cancel();
            }
        }
        info!(function = %self.spec.name, "code changed; processes will restart");
    }

    /// Records that process `id` holds `job`'s invocation (its reply is kept in `running`) and
    /// returns what is left of the job with the process's transcript; `None` when the process
    /// is gone (the job goes back to the queue for another one).
    fn hand_over(&self, id: u64, job: Job) -> Option<(Taken, Option<Transcript>)> {
        let mut state = self.state();
        let Some(worker) = state.workers.get_mut(&id) else {
            drop(state);
            self.jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_front(job);
            self.job_ready.notify_one();
            return None;
        };
        let request_id = job.invocation.request_id.clone();
        worker.busy = Some(request_id.clone());
        let running = Running {
            worker: id,
            reply: job.reply,
            since: Instant::now(),
            init: worker.init.take(),
        };
        let transcript = worker.process.as_ref().map(|p| p.transcript.clone());
        state.running.insert(request_id, running);
        let taken = Taken {
            invocation: job.invocation,
            taken: job.taken,
        };
        Some((taken, transcript))
    }

    fn kill(&self, id: u64) {
        if let Some(worker) = self.state().workers.get(&id) {
            worker.kill.cancel();
        }
    }

    /// Stops every process of this pool; queued invocations fail.
    pub fn stop(&self) {
        self.state().stopped = true;
        self.stop.cancel();
        self.fail_queued(&FunctionError::Crashed("the function was stopped".into()));
    }
}

impl Queue for Pool {
    fn function_name(&self) -> &str {
        &self.spec.name
    }

    fn arn(&self) -> &str {
        &self.spec.arn
    }

    /// Waits for the next invocation on behalf of process `id` (`/next`) and records that the
    /// process holds it. `None` when the process should stop asking (it is being replaced).
    async fn next_job(&self, id: u64) -> Option<Invocation> {
        {
            let mut state = self.state();
            let current = self.generation.load(Ordering::Acquire);
            let worker = state.workers.get_mut(&id)?;
            if worker.starting {
                worker.init = worker.process.as_ref().map(|p| p.spawned.elapsed());
            }
            worker.starting = false;
            if worker.generation != current {
                worker.kill.cancel();
                return None;
            }
            state.idle += 1;
        }
        let _idle = IdleGuard(self);
        loop {
            let notified = self.job_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let job = self
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            if let Some(job) = job {
                if job.reply.is_closed() {
                    continue;
                }
                let (job, transcript) = self.hand_over(id, job)?;
                let request_id = &job.invocation.request_id;
                // Before the process has the event, so none of its lines comes before.
                if let Some(transcript) = transcript.filter(|_| report::enabled()) {
                    transcript.write_now(vec![report::start(request_id)]).await;
                }
                let _ = job.taken.send(());
                let mut invocation = job.invocation;
                invocation.deadline_ms = clock::now_ms().saturating_add(
                    u64::try_from(self.spec.timeout.as_millis()).unwrap_or(u64::MAX),
                );
                return Some(invocation);
            }
            notified.await;
        }
    }

    /// Delivers a result or error posted for `request_id`; false when no process holds it.
    fn complete(&self, id: u64, request_id: &str, outcome: Result<Bytes, FunctionError>) -> bool {
        let mut state = self.state();
        let Some(running) = state.running.remove(request_id) else {
            return false;
        };
        if running.worker != id {
            state.running.insert(request_id.to_owned(), running);
            return false;
        }
        let current = self.generation.load(Ordering::Acquire);
        let mut process = None;
        if let Some(w) = state.workers.get_mut(&id) {
            w.busy = None;
            process = w.process.clone();
            // Code changed while it ran: this process has done its last invocation.
            if w.generation != current {
                w.kill.cancel();
            }
        }
        drop(state);
        let logged = process.filter(|_| report::enabled()).map(|process| {
            let closing = self.closing(request_id, &running, Some(process.pid), Status::Done);
            (process.transcript, closing)
        });
        let _ = running.reply.send(outcome);
        if let Some((transcript, closing)) = logged {
            transcript.answered(closing);
        }
        true
    }

    /// Fails every queued invocation (no process will be able to take them).
    fn fail_queued(&self, error: &FunctionError) {
        let queued: Vec<Job> = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for job in queued {
            let _ = job.reply.send(Err(error.clone()));
        }
    }
}

struct IdleGuard<'a>(&'a Pool);

impl Drop for IdleGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.idle = state.idle.saturating_sub(1);
    }
}

/// A request id in the form Lambda uses (a UUID).
fn uuid_like() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// An X-Ray trace header, as `Lambda-Runtime-Trace-Id` carries it.
fn trace_id() -> String {
    let seconds = clock::now_ms() / 1000;
    let root: [u8; 12] = rand::random();
    let parent: [u8; 8] = rand::random();
    format!(
        "Root=1-{seconds:08x}-{};Parent={};Sampled=0",
        hex::encode(root),
        hex::encode(parent)
    )
}
