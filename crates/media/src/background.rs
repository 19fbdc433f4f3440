//! Photo work off the request path. Decoding and resizing a phone photo takes a core for
//! a tenth of a second or more; on a 2-core server two of them at once left requests waiting
//! for the CPU. On threads of their own, a little less favoured by the kernel's scheduler,
//! they take what requests leave: a photo is ready a little later on a busy machine, and
//! nothing else is.
//!
//! The threads outlive a photo. A thread started for each one began with an empty heap: its
//! buffers (a decoded 3-megapixel photo is 9 MB) came fresh from the kernel, which zeroed every
//! page of them, and went back when the thread ended — a fifth of a photo's CPU under load.
//! A thread kept between photos reuses what the last one freed.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// How much less favoured those threads are (added to the process's nice value, at most 19).
pub const BACKGROUND_NICE: i32 = 10;

/// A thread with nothing to do for this long ends (its memory goes back to the system).
const IDLE_EXIT: Duration = Duration::from_secs(60);

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads started on demand: a job finds an idle one or starts one, so there are never more
/// than the callers run at once. Callers bound that.
struct Pool {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    idle: usize,
}

impl Pool {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(self: &Arc<Self>, job: Job) -> std::io::Result<()> {
        let mut state = self.lock();
        if state.idle > state.jobs.len() {
            state.jobs.push_back(job);
            drop(state);
            self.ready.notify_one();
            return Ok(());
        }
        drop(state);
        let pool = Arc::clone(self);
        std::thread::Builder::new()
            .name("musubi-media".into())
            .spawn(move || {
                lower_priority();
                job();
                pool.serve();
            })?;
        Ok(())
    }

    fn serve(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                drop(state);
                job();
                state = self.lock();
                continue;
            }
            state.idle += 1;
            let (next, waited) = self
                .ready
                .wait_timeout(state, IDLE_EXIT)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.jobs.is_empty() {
                return;
            }
        }
    }

    async fn run<T, F>(self: &Arc<Self>, work: F) -> std::io::Result<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            // A panic stays in its job: the thread goes on, the waiter hears it stopped.
            if let Ok(done) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                // The waiting request may have gone; its work is simply dropped then.
                let _ = tx.send(done);
            }
        }))?;
        rx.await
            .map_err(|_| std::io::Error::other("the media thread stopped without an answer"))
    }
}

/// Runs `work` on a thread of its own at a lower CPU priority and waits for it. Callers bound
/// how many run at once (each may hold a decoded photo).
pub async fn in_background<T, F>(work: F) -> std::io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    static POOL: OnceLock<Arc<Pool>> = OnceLock::new();
    POOL.get_or_init(Pool::new).run(work).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    fn thread_id() -> String {
        format!("{:?}", std::thread::current().id())
    }

    #[tokio::test]
    async fn one_job_after_another_runs_on_the_same_thread() {
        let pool = Pool::new();
        let first = pool.run(thread_id).await.unwrap();
        idle(&pool, 1).await;
        let second = pool.run(thread_id).await.unwrap();
        assert_eq!(first, second, "the thread was kept for the next job");
        assert_ne!(first, thread_id(), "not on the caller's thread");
    }

    #[tokio::test]
    async fn jobs_at_once_each_get_a_thread_and_a_panic_is_an_error() {
        let pool = Pool::new();
        let barrier = Arc::new(Barrier::new(3));
        let mut handles = Vec::new();
        for _ in 0..3 {
            let (p, b) = (Arc::clone(&pool), Arc::clone(&barrier));
            // Each waits for the others: they finish only if all three run at once.
            handles.push(tokio::spawn(async move {
                p.run(move || {
                    b.wait();
                    thread_id()
                })
                .await
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for h in handles {
            ids.insert(h.await.unwrap().unwrap());
        }
        assert_eq!(ids.len(), 3);

        let failed = pool.run(|| -> u8 { panic!("a decoder bug") }).await;
        assert!(failed.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7, "the pool still serves");
        idle(&pool, 3).await;
    }

    /// Waits until `n` threads wait for work (a thread answers before it goes back to wait).
    async fn idle(pool: &Pool, n: usize) {
        for _ in 0..500 {
            if pool.lock().idle == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} threads idle, not {n}", pool.lock().idle);
    }
}
