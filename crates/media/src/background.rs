//! Photo work off the request path. Decoding and resizing a phone photo takes a core for
//! a tenth of a second or more; on a 2-core server two of them at once left requests waiting
//! for the CPU. On threads of their own, a little less favoured by the kernel's scheduler,
//! they take what requests leave: a photo is ready a little later on a busy machine, and
//! nothing else is.

/// How much less favoured those threads are (added to the process's nice value, at most 19).
pub const BACKGROUND_NICE: i32 = 10;

/// Runs `work` on a thread of its own at a lower CPU priority and waits for it. Callers bound
/// how many run at once (each may hold a decoded photo).
pub async fn in_background<T, F>(work: F) -> std::io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("musubi-media".into())
        .spawn(move || {
            lower_priority();
            // The waiting request may have gone; its work is simply dropped then.
            let _ = tx.send(work());
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the media thread stopped without an answer"))
}

/// Lowers the calling thread's priority; where that is refused, the work runs as it is.
#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use nix::libc;
        // SAFETY: getpriority and setpriority take and return plain integers. On Linux a
        // nice value belongs to a thread, and PRIO_PROCESS with 0 names the calling one.
        unsafe {
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, (now + BACKGROUND_NICE).min(19));
        }
    }
}
