//! Spawning the postmaster so that it dies with us.
//!
//! PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not
//! the process. Tokio's blocking threads exit when idle, so the child is
//! forked from a dedicated std thread that lives exactly as long as the
//! child: it spawns, then blocks in `wait()` and reports the exit status.
//! Elsewhere than Linux there is no parent-death signal; Drop and `stop` remain.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;
#[cfg(target_os = "linux")]
use nix::unistd::{getpid, getppid};
use tokio::sync::{oneshot, watch};

/// `None` while running; then a description of how it exited.
pub(crate) type ExitWatch = watch::Receiver<Option<String>>;

pub(crate) struct Supervised {
    pub pid: i32,
    pub exit: ExitWatch,
}

/// Spawns `cmd` in its own process group on a dedicated thread, with
/// SIGINT (PostgreSQL's "fast shutdown") as its parent-death signal.
pub(crate) async fn spawn(mut cmd: Command) -> io::Result<Supervised> {
    // Own process group: a terminal Ctrl-C reaches only Musubi, which then
    // stops PostgreSQL in order instead of both racing.
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    set_parent_death_signal(&mut cmd, getpid());

    let (started_tx, started_rx) = oneshot::channel::<io::Result<i32>>();
    let (exit_tx, exit_rx) = watch::channel(None);
    std::thread::Builder::new()
        .name("musubi-postgres".to_owned())
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return;
                }
            };
            let pid = child.id() as i32;
            if started_tx.send(Ok(pid)).is_err() {
                // Nobody will ever own this server (start was cancelled): stop it.
                crate::procfs::signal(pid, Signal::SIGINT);
            }
            let exit = match child.wait() {
                Ok(status) => status.to_string(),
                Err(e) => format!("unknown exit ({e})"),
            };
            tracing::debug!(pid, %exit, "postgres exited");
            exit_tx.send_replace(Some(exit));
        })?;
    let pid = started_rx
        .await
        .map_err(|_| io::Error::other("the postgres supervisor thread ended unexpectedly"))??;
    Ok(Supervised { pid, exit: exit_rx })
}

/// Makes the kernel send SIGINT to the child when this thread exits.
#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command, parent: nix::unistd::Pid) {
    // SAFETY: the closure runs in the forked child before exec. It makes only
    // async-signal-safe syscalls (prctl, getppid) and does not allocate
    // (errors come from raw errno values). std runs pre_exec closures after
    // setgid/setuid, which matters because changing credentials clears the
    // parent-death signal.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGINT)
                .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
            // If we died between fork and prctl, no signal will ever come.
            if getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}
