//! Routing events to the subscriptions they may concern, so that an event wakes only the few
//! subscribers who are members of its group (or the one person it is meant for), not every open
//! connection of the process. With thousands of connections, waking each for every event cost
//! more than everything else the live updates do.
//!
//! One dispatcher task per [`Bus`](crate::Bus) reads the bus and hands each event to the
//! [`Route`]s registered for its group or person. Routing is only a prefilter: a subscriber
//! still checks every event it receives.

use crate::Event;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Events queued per subscriber before it counts as lagging (and re-reads PostgreSQL).
pub const ROUTE_CAPACITY: usize = 256;

/// What a [`Route`] yields.
#[derive(Debug)]
pub enum Delivery {
    Event(Arc<Event>),
    /// Events for this subscriber were dropped (it, or the dispatcher, fell behind): re-sync
    /// from PostgreSQL.
    Lagged,
    /// The bus is gone.
    Closed,
}

enum Msg {
    Event(Arc<Event>),
    Lagged,
}

struct Sub {
    user: Uuid,
    groups: HashSet<Uuid>,
    tx: mpsc::Sender<Msg>,
    lagged: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    subs: HashMap<u64, Sub>,
    by_group: HashMap<Uuid, Vec<u64>>,
    by_user: HashMap<Uuid, Vec<u64>>,
    /// The dispatcher ended: new routes are closed at once.
    closed: bool,
}

impl State {
    fn index(&mut self, id: u64, groups: &HashSet<Uuid>) {
        for g in groups {
            self.by_group.entry(*g).or_default().push(id);
        }
    }

    fn unindex(&mut self, id: u64, groups: &HashSet<Uuid>) {
        for g in groups {
            if let Some(ids) = self.by_group.get_mut(g) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.by_group.remove(g);
                }
            }
        }
    }

    fn send(&self, id: u64, msg: Msg) {
        if let Some(sub) = self.subs.get(&id) {
            if sub.tx.try_send(msg).is_err() {
                // Full (or being dropped): the subscriber re-syncs once it reads on.
                sub.lagged.store(true, Ordering::Release);
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Router {
    state: Mutex<State>,
}

impl Router {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain maps behind; they stay usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The dispatcher: runs until the bus closes.
    pub(crate) async fn run(self: Arc<Self>, mut rx: broadcast::Receiver<Arc<Event>>) {
        loop {
            match rx.recv().await {
                Ok(event) => self.dispatch(event),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let state = self.lock();
                    for id in state.subs.keys() {
                        state.send(*id, Msg::Lagged);
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        let mut state = self.lock();
        state.closed = true;
        // Dropping the senders ends every route.
        state.subs.clear();
        state.by_group.clear();
        state.by_user.clear();
    }

    fn dispatch(&self, event: Arc<Event>) {
        let state = self.lock();
        let targets = match event.user_id {
            // Meant for one person, whatever their groups (e.g. "you were removed").
            Some(user) => state.by_user.get(&user),
            None => state.by_group.get(&event.group_id),
        };
        if let Some(ids) = targets {
            for id in ids {
                state.send(*id, Msg::Event(Arc::clone(&event)));
            }
        }
    }

    pub(crate) fn register(self: &Arc<Self>, user: Uuid, groups: HashSet<Uuid>) -> Route {
        let (tx, rx) = mpsc::channel(ROUTE_CAPACITY);
        let lagged = Arc::new(AtomicBool::new(false));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        if !state.closed {
            state.index(id, &groups);
            state.by_user.entry(user).or_default().push(id);
            state.subs.insert(
                id,
                Sub {
                    user,
                    groups,
                    tx,
                    lagged: Arc::clone(&lagged),
                },
            );
        }
        // When closed, `tx` is dropped here and the route reports Closed.
        Route {
            id,
            router: Arc::clone(self),
            rx,
            lagged,
        }
    }

    fn set_groups(&self, id: u64, groups: HashSet<Uuid>) {
        let mut state = self.lock();
        let Some(old) = state
            .subs
            .get_mut(&id)
            .map(|s| std::mem::take(&mut s.groups))
        else {
            return;
        };
        state.unindex(id, &old);
        state.index(id, &groups);
        if let Some(sub) = state.subs.get_mut(&id) {
            sub.groups = groups;
        }
    }

    fn remove(&self, id: u64) {
        let mut state = self.lock();
        let Some(sub) = state.subs.remove(&id) else {
            return;
        };
        state.unindex(id, &sub.groups);
        if let Some(ids) = state.by_user.get_mut(&sub.user) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                state.by_user.remove(&sub.user);
            }
        }
    }

    #[cfg(test)]
    fn routes(&self) -> usize {
        self.lock().subs.len()
    }
}

/// One subscriber's registration: it receives the events of the groups it was given (keep them
/// current with [`Route::set_groups`]) and those meant for its person. Dropping it unregisters.
pub struct Route {
    id: u64,
    router: Arc<Router>,
    rx: mpsc::Receiver<Msg>,
    lagged: Arc<AtomicBool>,
}

impl Route {
    /// The next delivery. After [`Delivery::Lagged`] the events still queued keep coming; the
    /// caller skips those its re-sync already sent.
    pub async fn recv(&mut self) -> Delivery {
        if self.lagged.swap(false, Ordering::AcqRel) {
            return Delivery::Lagged;
        }
        match self.rx.recv().await {
            Some(Msg::Event(e)) => Delivery::Event(e),
            Some(Msg::Lagged) => Delivery::Lagged,
            None => Delivery::Closed,
        }
    }

    /// Replaces the groups whose events reach this route.
    pub fn set_groups(&self, groups: HashSet<Uuid>) {
        self.router.set_groups(self.id, groups);
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.router.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventKind;

    fn event(id: i64, group: Uuid, user: Option<Uuid>) -> Arc<Event> {
        Arc::new(Event {
            id,
            association_id: Uuid::nil(),
            group_id: group,
            topic_id: None,
            kind: EventKind::CommentPosted,
            scope: 7,
            actor_id: Uuid::nil(),
            topic_author_id: None,
            comment_ids: Vec::new(),
            user_id: user,
            xid: None,
        })
    }

    fn next_now(route: &mut Route) -> Option<Delivery> {
        if route.lagged.swap(false, Ordering::AcqRel) {
            return Some(Delivery::Lagged);
        }
        match route.rx.try_recv() {
            Ok(Msg::Event(e)) => Some(Delivery::Event(e)),
            Ok(Msg::Lagged) => Some(Delivery::Lagged),
            Err(_) => None,
        }
    }

    #[test]
    fn events_reach_only_members_and_their_person() {
        let router = Arc::new(Router::default());
        let (g1, g2) = (Uuid::new_v4(), Uuid::new_v4());
        let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
        let mut a = router.register(alice, HashSet::from([g1]));
        let mut b = router.register(bob, HashSet::from([g2]));

        router.dispatch(event(1, g1, None));
        router.dispatch(event(2, g2, Some(alice)));
        router.dispatch(event(3, g1, Some(bob)));

        let ids = |r: &mut Route| {
            let mut v = Vec::new();
            while let Some(d) = next_now(r) {
                match d {
                    Delivery::Event(e) => v.push(e.id),
                    other => panic!("unexpected {other:?}"),
                }
            }
            v
        };
        // Group 1's event and the one meant for her (in a group she is not in).
        assert_eq!(ids(&mut a), vec![1, 2]);
        // Only the one meant for him: an event for one person is not a group event.
        assert_eq!(ids(&mut b), vec![3]);

        b.set_groups(HashSet::from([g1]));
        router.dispatch(event(4, g1, None));
        router.dispatch(event(5, g2, None));
        assert_eq!(ids(&mut a), vec![4]);
        assert_eq!(ids(&mut b), vec![4]);

        drop(a);
        assert_eq!(router.routes(), 1);
        router.dispatch(event(6, g1, Some(alice)));
        assert!(!router.lock().by_user.contains_key(&alice));
        assert!(next_now(&mut b).is_none());
    }

    #[test]
    fn a_full_queue_reports_lag_and_keeps_what_it_holds() {
        let router = Arc::new(Router::default());
        let g = Uuid::new_v4();
        let mut r = router.register(Uuid::new_v4(), HashSet::from([g]));
        for i in 0..(ROUTE_CAPACITY as i64 + 10) {
            router.dispatch(event(i, g, None));
        }
        assert!(matches!(next_now(&mut r), Some(Delivery::Lagged)));
        // The queued events are still there, in order.
        match next_now(&mut r) {
            Some(Delivery::Event(e)) => assert_eq!(e.id, 0),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn routes_close_with_the_bus() {
        let router = Arc::new(Router::default());
        let (tx, rx) = broadcast::channel(8);
        let task = tokio::spawn(Arc::clone(&router).run(rx));
        let g = Uuid::new_v4();
        let mut r = router.register(Uuid::new_v4(), HashSet::from([g]));
        tx.send(event(1, g, None)).expect("a receiver");
        assert!(matches!(r.recv().await, Delivery::Event(e) if e.id == 1));
        drop(tx);
        task.await.expect("dispatcher ends");
        assert!(matches!(r.recv().await, Delivery::Closed));
        let mut late = router.register(Uuid::new_v4(), HashSet::new());
        assert!(matches!(late.recv().await, Delivery::Closed));
    }
}
