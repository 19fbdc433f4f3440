//! Tenant connections: one bounded set for all associations, each connection serving one
//! association at a time.
//!
//! A connection is *keyed* to an association when it is handed to it: `SET ROLE` to the
//! association's role and `SET search_path` to its schema, for the session. It keeps that key
//! while it idles, so the association's next request finds it with its prepared plans (PostgreSQL
//! re-plans a prepared statement whenever `search_path` differs from the one it was planned
//! under). When every connection is taken, the one idle longest, of any association, is re-keyed;
//! when none is idle, the request waits up to the acquire timeout. So the number of connections
//! never exceeds the bound, however many associations there are, and an association nobody uses
//! holds none once its connections idle out.
//!
//! Fewer may be *in use* at once than are open: beyond that, a request waits for one to come
//! back, and a connection coming back goes first to a request of the association it is keyed
//! to, unless the first in line has waited half a second: then to the first in line. Open
//! connections keep associations' plans; the cap on those in use keeps PostgreSQL from
//! running more transactions at once than the machine has cores for (each then holds its locks
//! longer while it waits for a CPU, and the others wait for them).

use crate::roles::{quote_role, tenant_role};
use crate::tenant::{quote_schema, Tenant};
use crate::{DbError, DbResult};
use musubi_types::AssociationId;
use sqlx::postgres::{PgConnectOptions, PgTransactionManager};
use sqlx::TransactionManager as _;
use sqlx::{Connection, PgConnection};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A connection idle this long is closed.
const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// A waiting request looks again this often, keeping its place in line, in case a place was
/// freed without being handed on. Every release hands on, so this is only a safety net: with
/// thousands waiting, each waking ten times a second and going to the back of the line (as they
/// once did) cost more CPU the longer the line grew, and mixed up its order.
const RECHECK: Duration = Duration::from_secs(1);
/// How long the first request in line may wait before a connection coming back goes to it
/// rather than to a later request of the association the connection is keyed to.
const PREFER_OWN_FOR: Duration = Duration::from_millis(500);
/// A connection returned in an unknown state gets this long to roll back or answer a ping.
const CLEANUP: Duration = Duration::from_secs(5);

pub(crate) struct Broker {
    connect: PgConnectOptions,
    /// One permit per open connection: the bound.
    slots: Arc<Semaphore>,
    bound: usize,
    /// Connections one association may use at once.
    per_tenant: usize,
    /// Connections all associations may use at once.
    in_use: usize,
    acquire_timeout: Duration,
    state: Mutex<State>,
    /// Connections handed from one association to another so far.
    rekeys: std::sync::atomic::AtomicU64,
}

/// What the tenant connections are doing, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantConnStats {
    pub open: usize,
    pub idle: usize,
    pub rekeys: u64,
}

#[derive(Default)]
struct State {
    /// Idle connections by the association they are keyed to, oldest first.
    idle: HashMap<AssociationId, Vec<Idle>>,
    /// Connections handed out (or being opened, keyed or cleaned) per association.
    busy: HashMap<AssociationId, usize>,
    /// Their sum.
    busy_total: usize,
    /// Requests waiting, oldest first. A returned connection (or a freed place) goes straight
    /// to one of them: no wake-up of every waiter for each release.
    waiters: VecDeque<Waiter>,
    next_waiter: u64,
    closed: bool,
}

struct Idle {
    conn: PgConnection,
    slot: OwnedSemaphorePermit,
    /// The association the connection is keyed to.
    key: AssociationId,
    since: Instant,
}

struct Waiter {
    id: u64,
    tenant: AssociationId,
    tx: oneshot::Sender<Given>,
    since: Instant,
}

/// What a waiter is handed, already counted against its association.
enum Given {
    Conn(Idle),
    /// A place for a new connection.
    Slot(OwnedSemaphorePermit),
}

/// A queued waiter's place in line. Dropped (a timeout, a request that went away), it leaves
/// the queue, or passes on what it was handed meanwhile.
struct InLine {
    broker: Arc<Broker>,
    id: u64,
    tenant: AssociationId,
    rx: Option<oneshot::Receiver<Given>>,
}

impl InLine {
    /// What was handed over by `until` (`Err`: the broker closed), or `None`, still in line.
    async fn wait(&mut self, until: Instant) -> Option<Result<Given, oneshot::error::RecvError>> {
        let rx = self.rx.as_mut()?;
        let given = tokio::time::timeout_at(until, rx).await.ok()?;
        self.rx = None;
        Some(given)
    }
}

impl Drop for InLine {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        let mut st = self.broker.lock();
        if let Some(pos) = st.waiters.iter().position(|w| w.id == self.id) {
            st.waiters.remove(pos);
            return;
        }
        // Served under the lock before this took it: the hand-off is in the channel.
        if let Ok(given) = rx.try_recv() {
            unbusy(&mut st, self.tenant);
            self.broker.give(&mut st, given);
        }
    }
}

enum Step {
    Reuse(Idle),
    Open(OwnedSemaphorePermit),
    Rekey(Idle),
}

/// Counts a hand-out against its association until it is defused into a [`TenantConn`]; a
/// dropped acquire (a request that went away while connecting) gives its place back.
struct Claim {
    broker: Arc<Broker>,
    tenant: AssociationId,
    armed: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.armed {
            self.broker.unclaim(self.tenant);
        }
    }
}

impl Broker {
    pub(crate) fn new(
        connect: PgConnectOptions,
        bound: usize,
        per_tenant: usize,
        in_use: usize,
        acquire_timeout: Duration,
    ) -> Arc<Self> {
        let bound = bound.max(1);
        let in_use = in_use.clamp(1, bound);
        let broker = Arc::new(Self {
            connect,
            slots: Arc::new(Semaphore::new(bound)),
            bound,
            per_tenant: per_tenant.clamp(1, in_use),
            in_use,
            acquire_timeout,
            state: Mutex::default(),
            rekeys: std::sync::atomic::AtomicU64::new(0),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap(Arc::downgrade(&broker)));
        }
        broker
    }

    /// The same broker (unused yet) with other caps: per association, and in use at once.
    pub(crate) fn with_caps(self: &Arc<Self>, per_tenant: usize, in_use: usize) -> Arc<Self> {
        Self::new(
            self.connect.clone(),
            self.bound,
            per_tenant,
            in_use,
            self.acquire_timeout,
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked between two consistent updates.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection keyed to `tenant`, waiting up to the acquire timeout.
    pub(crate) fn acquire<'a>(
        self: &'a Arc<Self>,
        tenant: &'a Tenant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = DbResult<TenantConn>> + Send + 'a>>
    {
        Box::pin(self.acquire_inner(tenant))
    }

    async fn acquire_inner(self: &Arc<Self>, tenant: &Tenant) -> DbResult<TenantConn> {
        let deadline = Instant::now() + self.acquire_timeout;
        let mut waiting: Option<InLine> = None;
        let step = loop {
            let mut line = match waiting.take() {
                Some(line) => line,
                None => match self.step(tenant.id)? {
                    Ok(step) => break step,
                    Err(line) => line,
                },
            };
            match line.wait(deadline.min(Instant::now() + RECHECK)).await {
                Some(Ok(Given::Conn(idle))) if idle.key == tenant.id => break Step::Reuse(idle),
                Some(Ok(Given::Conn(idle))) => break Step::Rekey(idle),
                Some(Ok(Given::Slot(slot))) => break Step::Open(slot),
                // The broker closed.
                Some(Err(_)) => return Err(DbError::Sqlx(sqlx::Error::PoolClosed)),
                None if Instant::now() >= deadline => {
                    return Err(DbError::Sqlx(sqlx::Error::PoolTimedOut))
                }
                // Look again, still in line: a place may have been freed without being
                // handed on.
                None => match self.retry(&line)? {
                    Some(step) => {
                        // Out of line now: nothing can be handed to it any more.
                        line.rx = None;
                        break step;
                    }
                    None => waiting = Some(line),
                },
            }
        };
        // Counted against the association from here; given back if this fails or is dropped.
        let mut claim = Claim {
            broker: Arc::clone(self),
            tenant: tenant.id,
            armed: true,
        };
        let (conn, slot) = match step {
            Step::Reuse(idle) => (idle.conn, idle.slot),
            Step::Open(slot) => match open(&self.connect, tenant).await {
                Ok(conn) => (conn, slot),
                Err(e) => {
                    self.give_slot(slot);
                    return Err(e);
                }
            },
            Step::Rekey(idle) => {
                self.rekeys
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match rekey(idle.conn, tenant).await {
                    Ok(conn) => (conn, idle.slot),
                    // The connection was broken: its slot opens a fresh one.
                    Err(_) => match open(&self.connect, tenant).await {
                        Ok(conn) => (conn, idle.slot),
                        Err(e) => {
                            self.give_slot(idle.slot);
                            return Err(e);
                        }
                    },
                }
            }
        };
        claim.armed = false;
        Ok(TenantConn {
            conn: Some(conn),
            slot: Some(slot),
            tenant: tenant.id,
            broker: Arc::clone(self),
            clean: false,
        })
    }

    /// What `tenant` can have now (counted against its share), or a place in line.
    fn step(self: &Arc<Self>, tenant: AssociationId) -> DbResult<Result<Step, InLine>> {
        let mut st = self.lock();
        if st.closed {
            return Err(DbError::Sqlx(sqlx::Error::PoolClosed));
        }
        if let Some(step) = self.take_now(&mut st, tenant) {
            return Ok(Ok(step));
        }
        let (tx, rx) = oneshot::channel();
        let id = st.next_waiter;
        st.next_waiter += 1;
        st.waiters.push_back(Waiter {
            id,
            tenant,
            tx,
            since: Instant::now(),
        });
        Ok(Err(InLine {
            broker: Arc::clone(self),
            id,
            tenant,
            rx: Some(rx),
        }))
    }

    /// What `tenant` can have now, counted against its share.
    fn take_now(&self, st: &mut State, tenant: AssociationId) -> Option<Step> {
        let step = if !self.may_take(st, tenant) {
            None
        } else if let Some(idle) = st.idle.get_mut(&tenant).and_then(Vec::pop) {
            Some(Step::Reuse(idle))
        } else if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            Some(Step::Open(slot))
        } else {
            take_oldest_idle(&mut st.idle).map(Step::Rekey)
        }?;
        make_busy(st, tenant);
        if st.idle.get(&tenant).is_some_and(Vec::is_empty) {
            st.idle.remove(&tenant);
        }
        Some(step)
    }

    /// For a request in line whose wait ran out: what it can have now, leaving the line, or
    /// `None` (still in line; or served meanwhile, which its next wait finds at once).
    fn retry(&self, line: &InLine) -> DbResult<Option<Step>> {
        let mut st = self.lock();
        if st.closed {
            return Err(DbError::Sqlx(sqlx::Error::PoolClosed));
        }
        let Some(pos) = st.waiters.iter().position(|w| w.id == line.id) else {
            return Ok(None);
        };
        let Some(step) = self.take_now(&mut st, line.tenant) else {
            return Ok(None);
        };
        st.waiters.remove(pos);
        Ok(Some(step))
    }

    /// Whatever can be handed now goes to the line: after a place was freed without a
    /// connection coming back (a request that went away while its connection was opened or
    /// re-keyed), and after a hand-off, since one release can let more than one request in
    /// line go (its association's share and the cap on connections in use both freed).
    fn hand_on(&self, st: &mut State) {
        while !st.closed && st.waiters.iter().any(|w| self.may_take(st, w.tenant)) {
            let waiting = st.waiters.len();
            if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
                self.give(st, Given::Slot(slot));
            } else if let Some(idle) = take_oldest_idle(&mut st.idle) {
                self.give(st, Given::Conn(idle));
            } else {
                return;
            }
            if st.waiters.len() == waiting {
                return;
            }
        }
    }

    /// Hands a connection (or a place for one) to the first waiter its association's share
    /// allows, preferring a waiter of the association the connection is keyed to; keeps it idle
    /// (or frees the place) when nobody can take it.
    fn give(&self, st: &mut State, mut given: Given) {
        while let Some(first) = st.waiters.iter().position(|w| self.may_take(st, w.tenant)) {
            // Its own association's request first, unless the line has waited long: under
            // overload every association always has someone waiting, and connections would
            // never move to where the line is longest.
            let same = match &given {
                Given::Conn(idle) if st.waiters[first].since.elapsed() < PREFER_OWN_FOR => st
                    .waiters
                    .iter()
                    .position(|w| w.tenant == idle.key && self.may_take(st, w.tenant)),
                _ => None,
            };
            let pos = same.unwrap_or(first);
            let Some(w) = st.waiters.remove(pos) else {
                break;
            };
            make_busy(st, w.tenant);
            // The waiter's own warm connection, when one idles (a waiter held back by the cap
            // on connections in use): what came back idles instead, or frees its place.
            let keyed_to_waiter = matches!(&given, Given::Conn(idle) if idle.key == w.tenant);
            if !keyed_to_waiter {
                if let Some(own) = st.idle.get_mut(&w.tenant).and_then(Vec::pop) {
                    if st.idle.get(&w.tenant).is_some_and(Vec::is_empty) {
                        st.idle.remove(&w.tenant);
                    }
                    if let Given::Conn(back) = std::mem::replace(&mut given, Given::Conn(own)) {
                        if !st.closed {
                            st.idle.entry(back.key).or_default().push(back);
                        }
                    }
                }
            }
            match w.tx.send(given) {
                Ok(()) => return,
                // That waiter is gone: the next one.
                Err(back) => {
                    unbusy(st, w.tenant);
                    given = back;
                }
            }
        }
        match given {
            Given::Conn(idle) if !st.closed => {
                st.idle.entry(idle.key).or_default().push(idle);
            }
            // Closed, or a free place: dropping it frees the slot.
            Given::Conn(_) | Given::Slot(_) => {}
        }
    }

    /// Whether `tenant` may have one more connection: under its share and under the cap on
    /// connections in use.
    fn may_take(&self, st: &State, tenant: AssociationId) -> bool {
        st.busy_total < self.in_use && st.busy.get(&tenant).copied().unwrap_or(0) < self.per_tenant
    }

    fn give_slot(&self, slot: OwnedSemaphorePermit) {
        let mut st = self.lock();
        self.give(&mut st, Given::Slot(slot));
    }

    fn unclaim(&self, tenant: AssociationId) {
        let mut st = self.lock();
        unbusy(&mut st, tenant);
        self.hand_on(&mut st);
    }

    /// Rolls back or pings a connection returned in an unknown state, then returns it.
    async fn clean_up(
        self: Arc<Self>,
        tenant: AssociationId,
        mut conn: PgConnection,
        slot: OwnedSemaphorePermit,
        rollback: bool,
    ) {
        let healthy = if rollback {
            matches!(
                tokio::time::timeout(CLEANUP, PgTransactionManager::rollback(&mut conn)).await,
                Ok(Ok(()))
            )
        } else {
            matches!(tokio::time::timeout(CLEANUP, conn.ping()).await, Ok(Ok(())))
        };
        self.put_back(tenant, healthy.then_some(conn), slot);
    }

    /// A connection back from `tenant`: to a waiter or the idle set; or, broken (`None`), its
    /// place to a waiter.
    fn put_back(
        &self,
        tenant: AssociationId,
        conn: Option<PgConnection>,
        slot: OwnedSemaphorePermit,
    ) {
        let mut st = self.lock();
        unbusy(&mut st, tenant);
        let given = match conn {
            Some(conn) => Given::Conn(Idle {
                conn,
                slot,
                key: tenant,
                since: Instant::now(),
            }),
            None => Given::Slot(slot),
        };
        self.give(&mut st, given);
        self.hand_on(&mut st);
    }

    /// Closes every idle connection and refuses new hand-outs; busy ones close on return.
    pub(crate) async fn close(&self) {
        let idle: Vec<Idle> = {
            let mut st = self.lock();
            st.closed = true;
            // Dropping the waiters' senders tells them.
            st.waiters.clear();
            st.idle.drain().flat_map(|(_, v)| v).collect()
        };
        for i in idle {
            let _ = i.conn.close().await;
        }
    }

    /// Connections all associations may use at once.
    pub(crate) fn in_use(&self) -> usize {
        self.in_use
    }

    /// Open connections now (idle and handed out), for metrics and tests.
    pub(crate) fn open_connections(&self) -> usize {
        self.bound - self.slots.available_permits()
    }

    pub(crate) fn stats(&self) -> TenantConnStats {
        let idle = self.lock().idle.values().map(Vec::len).sum();
        TenantConnStats {
            open: self.open_connections(),
            idle,
            rekeys: self.rekeys.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

fn make_busy(st: &mut State, tenant: AssociationId) {
    *st.busy.entry(tenant).or_default() += 1;
    st.busy_total += 1;
}

fn unbusy(st: &mut State, tenant: AssociationId) {
    if let Some(n) = st.busy.get_mut(&tenant) {
        *n = n.saturating_sub(1);
        st.busy_total = st.busy_total.saturating_sub(1);
        if *n == 0 {
            st.busy.remove(&tenant);
        }
    }
}

fn take_oldest_idle(idle: &mut HashMap<AssociationId, Vec<Idle>>) -> Option<Idle> {
    let (&tenant, _) = idle
        .iter()
        .filter_map(|(t, v)| v.first().map(|i| (t, i.since)))
        .min_by_key(|(_, since)| *since)?;
    let list = idle.get_mut(&tenant)?;
    let oldest = list.remove(0);
    if list.is_empty() {
        idle.remove(&tenant);
    }
    Some(oldest)
}

/// The session settings that key a connection to `tenant`. Names come from the registry.
fn key_sql(tenant: &Tenant) -> String {
    format!(
        "SET ROLE {}; SET search_path TO {}",
        quote_role(&tenant_role(tenant.schema_name())),
        quote_schema(tenant.schema_name())
    )
}

async fn open(connect: &PgConnectOptions, tenant: &Tenant) -> DbResult<PgConnection> {
    let mut conn = PgConnection::connect_with(connect).await?;
    crate::simple(&mut conn, &key_sql(tenant)).await?;
    Ok(conn)
}

async fn rekey(mut conn: PgConnection, tenant: &Tenant) -> DbResult<PgConnection> {
    // The prepared statements stay: every association runs the same statement texts, and
    // PostgreSQL re-plans one on its first use under the new `search_path` (privileges are
    // checked at each execution, as the new role). Dropping them would add a parse to that.
    crate::simple(&mut conn, &key_sql(tenant)).await?;
    Ok(conn)
}

/// Closes connections idle past [`IDLE_CLOSE`], so idle associations cost nothing.
async fn reap(broker: Weak<Broker>) {
    let mut tick = tokio::time::interval(IDLE_CLOSE / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(b) = broker.upgrade() else { return };
        let stale: Vec<Idle> = {
            let mut st = b.lock();
            if st.closed {
                return;
            }
            let now = Instant::now();
            let mut stale = Vec::new();
            st.idle.retain(|_, list| {
                let (old, keep): (Vec<Idle>, Vec<Idle>) = std::mem::take(list)
                    .into_iter()
                    .partition(|i| now.duration_since(i.since) >= IDLE_CLOSE);
                stale.extend(old);
                *list = keep;
                !list.is_empty()
            });
            stale
        };
        drop(b);
        for i in stale {
            let _ = i.conn.close().await;
        }
    }
}

/// A connection keyed to one association, returned to the broker when dropped: as it is after
/// a finished transaction, otherwise after a rollback or a ping shows it usable.
pub struct TenantConn {
    conn: Option<PgConnection>,
    slot: Option<OwnedSemaphorePermit>,
    tenant: AssociationId,
    broker: Arc<Broker>,
    /// Known to have nothing in flight (set after COMMIT or ROLLBACK completed).
    clean: bool,
}

impl TenantConn {
    /// The transaction ended (COMMIT or ROLLBACK completed): nothing is in flight.
    pub(crate) fn ended(&mut self) {
        self.clean = true;
    }

    /// Returns the connection after reads that all completed, sparing the ping a connection
    /// dropped in an unknown state gets (one dropped mid-statement: a request that went away).
    /// A query's unread remainder, if any, is drained by the next user, as sqlx always does.
    pub fn done(mut self) {
        self.clean = !self.is_in_transaction();
    }
}

impl std::ops::Deref for TenantConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for TenantConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn.as_mut().expect("present until dropped")
    }
}

impl Drop for TenantConn {
    fn drop(&mut self) {
        let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.take()) else {
            return;
        };
        // sqlx counts the transactions it began; a dropped one still counts.
        let rollback = conn.is_in_transaction();
        if self.clean && !rollback {
            // Known clean (a finished transaction, completed reads): back at once.
            self.broker.put_back(self.tenant, Some(conn), slot);
            return;
        }
        let broker = Arc::clone(&self.broker);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(broker.clean_up(self.tenant, conn, slot, rollback));
            }
            // No runtime to clean it on: close it and pass its place on.
            Err(_) => broker.put_back(self.tenant, None, slot),
        }
    }
}
