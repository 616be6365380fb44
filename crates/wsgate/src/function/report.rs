//! The lines Lambda's platform writes about each invocation, as wsgate writes them for local
//! functions: `START`, `END`, `REPORT` (with `Init Duration` on a process's first invocation) and
//! the timeout notice. Pure formatting; [`super::transcript`] puts them among the handler's output.

use std::time::Duration;

/// Whether these lines are logged at all (the `wsgate::function::log` target at info): when not,
/// none is formatted, no peak memory is read and `START` is not waited for.
pub(super) fn enabled() -> bool {
    tracing::enabled!(target: "wsgate::function::log", tracing::Level::INFO)
}

/// An invocation that is over, as its `END` and `REPORT` lines need it. The transcript makes
/// the lines of an answered one when it logs them, so the peak memory is read then, off the path
/// of the answer.
#[derive(Debug)]
pub(super) struct Closing {
    pub request_id: String,
    /// The process whose `VmHWM` is its peak memory; `None` when it is gone.
    pub pid: Option<u32>,
    pub duration: Duration,
    pub memory_size: u32,
    pub init: Option<Duration>,
    pub status: Status,
}

impl Closing {
    /// `END` and `REPORT`, with the process's peak memory as of now.
    pub(super) fn lines(&self) -> [String; 2] {
        let report = Report {
            request_id: &self.request_id,
            duration: self.duration,
            memory_size: self.memory_size,
            max_memory_used: self.pid.and_then(max_memory_used),
            init: self.init,
            status: self.status,
        };
        [end(&self.request_id), report.to_string()]
    }
}

/// `START RequestId: <id> Version: $LATEST`, when a process takes the invocation.
pub(super) fn start(request_id: &str) -> String {
    format!("START RequestId: {request_id} Version: $LATEST")
}

/// `END RequestId: <id>`, when the invocation is over (answered, failed or timed out).
pub(super) fn end(request_id: &str) -> String {
    format!("END RequestId: {request_id}")
}

/// `2026-12-07T16:00:00.123Z <id> Task timed out after 3.00 seconds`, as Lambda writes it before
/// the `END` of an invocation it stops; `now` is the wall-clock time in ms since the epoch.
pub(super) fn timed_out(now_ms: u64, request_id: &str, timeout: Duration) -> String {
    format!(
        "{} {request_id} Task timed out after {:.2} seconds",
        wsgate_core::clock::iso8601(now_ms),
        timeout.as_secs_f64()
    )
}

/// How an invocation ended, when not with an answer (Lambda adds `Status` to the `REPORT` then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// The answer (or the handler's error) was posted.
    Done,
    /// Past the function's timeout: the process was killed.
    Timeout,
    /// The process ended while it held the invocation.
    Error,
}

/// The `REPORT` line of one invocation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Report<'a> {
    pub request_id: &'a str,
    /// From the hand-over to the process until its answer.
    pub duration: Duration,
    /// The function's `memory_size`, MB.
    pub memory_size: u32,
    /// The process's peak resident memory, MB; `None` when it cannot be read (the process is
    /// gone, or not on Linux), and the field is left out.
    pub max_memory_used: Option<u64>,
    /// From the spawn until the process first asked for work, on its first invocation only.
    pub init: Option<Duration>,
    pub status: Status,
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB",
            self.request_id,
            millis(self.duration),
            billed_ms(self.duration),
            self.memory_size
        )?;
        if let Some(used) = self.max_memory_used {
            write!(f, "\tMax Memory Used: {used} MB")?;
        }
        if let Some(init) = self.init {
            write!(f, "\tInit Duration: {:.2} ms", millis(init))?;
        }
        match self.status {
            Status::Done => Ok(()),
            Status::Timeout => f.write_str("\tStatus: timeout"),
            Status::Error => f.write_str("\tStatus: error"),
        }
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The billed duration in whole ms: Lambda bills each started millisecond (1 ms at least).
pub(super) fn billed_ms(duration: Duration) -> u128 {
    let nanos = duration.as_nanos();
    nanos.div_ceil(1_000_000).max(1)
}

/// The peak resident memory of process `pid` in MB (rounded up), from `VmHWM` in
/// `/proc/<pid>/status`; `None` where there is no such file.
pub(super) fn max_memory_used(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    peak_mb(&status)
}

/// `VmHWM:     45112 kB` in a `/proc/<pid>/status` text, in MB rounded up.
fn peak_mb(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let kb: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb.div_ceil(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: Status) -> Report<'static> {
        Report {
            request_id: "8f5a1c3e-0b7d-4e2a-9c1f-3d6e5b4a2f10",
            duration: Duration::from_micros(12_340),
            memory_size: 128,
            max_memory_used: Some(45),
            init: None,
            status,
        }
    }

    #[test]
    fn a_report_reads_like_lambdas_with_init_duration_on_a_cold_start_only() {
        assert_eq!(
            report(Status::Done).to_string(),
            "REPORT RequestId: 8f5a1c3e-0b7d-4e2a-9c1f-3d6e5b4a2f10\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 45 MB"
        );
        let cold = Report {
            init: Some(Duration::from_micros(123_454)),
            ..report(Status::Done)
        };
        assert!(
            cold.to_string()
                .ends_with("\tMax Memory Used: 45 MB\tInit Duration: 123.45 ms"),
            "{cold}"
        );
    }

    #[test]
    fn a_timed_out_or_crashed_invocation_has_a_status_and_unknown_memory_is_left_out() {
        assert!(
            report(Status::Timeout)
                .to_string()
                .ends_with("\tMax Memory Used: 45 MB\tStatus: timeout")
        );
        let gone = Report {
            max_memory_used: None,
            ..report(Status::Error)
        };
        assert!(
            gone.to_string()
                .ends_with("\tMemory Size: 128 MB\tStatus: error"),
            "{gone}"
        );
    }

    #[test]
    fn billing_rounds_every_started_millisecond_up() {
        assert_eq!(billed_ms(Duration::from_micros(12_001)), 13);
        assert_eq!(billed_ms(Duration::from_millis(12)), 12);
        assert_eq!(billed_ms(Duration::from_nanos(1)), 1);
        assert_eq!(billed_ms(Duration::ZERO), 1);
        assert_eq!(billed_ms(Duration::from_secs(3)), 3000);
    }

    #[test]
    fn peak_memory_is_vmhwm_in_megabytes_rounded_up() {
        let status =
            "Name:\tpython3\nVmPeak:\t  300000 kB\nVmHWM:\t   45112 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(peak_mb(status), Some(45));
        assert_eq!(peak_mb("VmHWM:\t1024 kB\n"), Some(1));
        assert_eq!(peak_mb("VmHWM:\t1025 kB\n"), Some(2));
        assert_eq!(peak_mb("Name:\tzombie\n"), None);
        assert_eq!(peak_mb("VmHWM:\tlots kB\n"), None);
    }

    #[test]
    fn our_own_peak_memory_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let used = max_memory_used(std::process::id()).expect("VmHWM");
            assert!(used > 0);
        }
    }

    #[test]
    fn a_timeout_notice_has_the_time_the_id_and_two_decimals() {
        assert_eq!(
            timed_out(1_716_559_329_114, "r1", Duration::from_secs(3)),
            "2024-05-24T14:02:09.114Z r1 Task timed out after 3.00 seconds"
        );
        assert!(timed_out(0, "r1", Duration::from_millis(1500)).ends_with("after 1.50 seconds"));
        assert_eq!(start("r1"), "START RequestId: r1 Version: $LATEST");
        assert_eq!(end("r1"), "END RequestId: r1");
    }
}
