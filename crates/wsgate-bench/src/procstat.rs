//! CPU time and memory of a process, or the sum over several (`PID,PID,...`: the nodes of a
//! cluster and their Redis), from `/proc`.

use std::fs;

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User + system CPU seconds of a process (`self` for this one), summed over a comma-separated
/// list of them.
pub fn cpu_seconds(pids: &str) -> anyhow::Result<f64> {
    pids.split(',').map(|pid| one_cpu_seconds(pid.trim())).sum()
}

/// User + system CPU seconds of one process.
fn one_cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields
        .get(11)
        .ok_or_else(|| anyhow::anyhow!("short stat"))?
        .parse()?;
    let stime: f64 = fields
        .get(12)
        .ok_or_else(|| anyhow::anyhow!("short stat"))?
        .parse()?;
    Ok((utime + stime) / TICKS_PER_SECOND)
}

/// Resident set size in KiB, summed over a comma-separated list of processes.
pub fn rss_kib(pids: &str) -> anyhow::Result<u64> {
    pids.split(',').map(|pid| one_rss_kib(pid.trim())).sum()
}

/// Resident set size of one process in KiB.
fn one_rss_kib(pid: &str) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    Ok(line.split_whitespace().nth(1).unwrap_or("0").parse()?)
}

/// CPU used by the server and by this client over one measured phase.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    server: Option<f64>,
    client: f64,
}

/// The CPU a phase cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsed {
    /// Server seconds (0 when no server PID is known).
    pub server: f64,
    /// Client seconds.
    pub client: f64,
}

impl CpuMeter {
    /// Starts measuring; `server_pid` may be absent (then only the client is measured) or list
    /// several processes (then their CPU is summed).
    pub fn start(server_pid: Option<&str>) -> Self {
        Self {
            server: server_pid.and_then(|p| cpu_seconds(p).ok()),
            client: cpu_seconds("self").unwrap_or(0.0),
        }
    }

    /// The CPU spent since `start`.
    pub fn stop(&self, server_pid: Option<&str>) -> CpuUsed {
        let server = match (self.server, server_pid.and_then(|p| cpu_seconds(p).ok())) {
            (Some(before), Some(after)) => after - before,
            _ => 0.0,
        };
        CpuUsed {
            server,
            client: cpu_seconds("self").unwrap_or(0.0) - self.client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_pids_is_summed() {
        let one = rss_kib("self").expect("own RSS");
        let two = rss_kib("self, self").expect("own RSS twice");
        assert!(two > one && two <= 3 * one, "{one} KiB, twice {two} KiB");
        let cpu = cpu_seconds("self").expect("own CPU");
        assert!(cpu_seconds("self,self").expect("own CPU twice") >= cpu);
        assert!(cpu_seconds("self,0").is_err());
    }
}
