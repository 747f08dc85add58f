//! CPU time and memory of processes, from /proc (proc(5)) and getrusage.

/// CPU time and memory of a process and its descendants, from /proc.
#[derive(Clone, Debug, Default)]
pub struct ProcTree {
    /// The process and its descendants, the root first.
    pub pids: Vec<u32>,
    /// utime + stime + cutime + cstime, seconds.
    pub cpu_s: f64,
    /// VmRSS summed over the processes.
    pub rss_kib: u64,
    /// VmHWM (peak RSS) summed over the processes.
    pub hwm_kib: u64,
    /// Proportional set size: shared pages divided among the processes that
    /// share them, so a sum over a tree of processes (Postfix's smtpd per
    /// connection) does not count the same library pages once per process.
    pub pss_kib: u64,
}

/// The figures of `root` and its descendants; `None` when `root` is gone.
pub fn proc_tree(root: u32) -> Option<ProcTree> {
    // Parent of every process, to find the descendants.
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(fields) = stat_fields(pid) {
                if let Some(ppid) = fields.get(1).and_then(|s| s.parse().ok()) {
                    parents.push((pid, ppid));
                }
            }
        }
    }
    let mut pids = vec![root];
    let mut i = 0;
    while i < pids.len() {
        let p = pids[i];
        pids.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut tree = ProcTree::default();
    for &pid in &pids {
        let Some(fields) = stat_fields(pid) else {
            if pid == root {
                return None;
            }
            continue;
        };
        // Fields after the command: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
        let t: u64 = (11..=14)
            .filter_map(|k| fields.get(k).and_then(|s| s.parse::<u64>().ok()))
            .sum();
        tree.cpu_s += t as f64 / ticks;
        tree.rss_kib += status_kib(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0);
        tree.hwm_kib += status_kib(&format!("/proc/{pid}/status"), "VmHWM:").unwrap_or(0);
        tree.pss_kib += status_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(0);
        tree.pids.push(pid);
    }
    Some(tree)
}

/// The fields of /proc/PID/stat after the `(comm)`: the command may hold
/// spaces and parentheses, so the split starts after its last `)`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A `Key:   1234 kB` line of a /proc status-like file, in KiB.
fn status_kib(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// This process's resident set, KiB (0 when /proc cannot say).
pub fn self_rss_kib() -> u64 {
    status_kib("/proc/self/status", "VmRSS:").unwrap_or(0)
}

/// This process's user and system CPU time so far, seconds.
pub fn self_cpu_s() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes into the rusage we own and pass by a
    // valid, exclusive pointer.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}
