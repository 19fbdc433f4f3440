//! Looking at other processes through /proc (Linux).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// True if `pid` exists and is not a zombie (a zombie has exited; it only
/// waits for a parent that may never reap it, e.g. in a container without init).
pub(crate) fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z" || state == "X")
}

/// True if the process's command looks like a PostgreSQL server process.
/// Backends rewrite their argv ("postgres: checkpointer"), so look at the
/// first word only.
pub(crate) fn is_postgres(pid: i32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let first = cmdline
        .split(|b| *b == 0 || *b == b' ')
        .next()
        .unwrap_or_default();
    let name = first.rsplit(|b| *b == b'/').next().unwrap_or_default();
    name.starts_with(b"postgres") || name.starts_with(b"postmaster")
}

/// The process's working directory; every PostgreSQL server process runs
/// with cwd = its PGDATA, which makes this a reliable ownership test.
pub(crate) fn cwd(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// PostgreSQL processes whose cwd is `pgdata` (other than ourselves).
pub(crate) fn postgres_processes_in(pgdata: &Path) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| cwd(pid).as_deref() == Some(pgdata))
        .filter(|&pid| is_postgres(pid) && alive(pid))
        .collect()
}

/// Polls until none of `pids` is alive or `timeout` passes; returns the survivors.
pub(crate) async fn wait_gone(pids: &[i32], timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `signal`, ignoring a process that has already gone.
pub(crate) fn signal(pid: i32, signal: Signal) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself() {
        let me = std::process::id() as i32;
        assert!(alive(me));
        assert!(!is_postgres(me));
        assert!(!alive(0));
        assert!(!alive(-5));
    }
}
