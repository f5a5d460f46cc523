//! The ring each shared subscription fans its serialized responses out
//! through: a broadcast queue that costs memory by what it holds, not by the
//! slots it may hold.
//!
//! `tokio::sync::broadcast` reserves every slot up front; at 8 192 slots that
//! was about 330 KiB per distinct subscription before a single item, and a
//! viewer could open a thousand of them. Here the queue grows as items come
//! and an item is freed as soon as every subscriber present when it was sent
//! has read it. A subscriber that falls behind loses the oldest items (and is
//! told how many) when the ring already holds `capacity` items, or when all
//! the rings of the instance together hold more than their shared byte budget
//! (the [`Ledger`]): then the ring that is sending sheds its own unread items
//! first, so a stuck subscriber never makes a reader that keeps up lose
//! anything.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures::{Stream, stream};
use tokio::sync::Notify;

/// A GraphQL response as JSON, serialized once for every subscriber.
pub type Payload = Arc<str>;

/// Bytes held by every ring of an instance, against one budget.
pub struct Ledger {
    held: AtomicUsize,
    budget: usize,
}

impl Ledger {
    pub fn new(budget: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            budget,
        })
    }

    /// Bytes of unread items held by all rings now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn over_budget(&self) -> bool {
        self.held() > self.budget
    }
}

struct Slot {
    payload: Payload,
    /// Subscribers that have yet to read it.
    unread: usize,
}

struct State {
    items: VecDeque<Slot>,
    /// Sequence number of `items[0]`.
    first: u64,
    receivers: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Notify,
    capacity: usize,
    ledger: Arc<Ledger>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pop_front(&self, state: &mut State) {
        if let Some(slot) = state.items.pop_front() {
            state.first += 1;
            self.ledger
                .held
                .fetch_sub(slot.payload.len(), Ordering::Relaxed);
        }
    }

    /// Frees the items every subscriber has read.
    fn release_read(&self, state: &mut State) {
        while state.items.front().is_some_and(|slot| slot.unread == 0) {
            self.pop_front(state);
        }
        // A burst may have grown the queue; do not keep its memory.
        if state.items.is_empty() && state.items.capacity() > 64 {
            state.items = VecDeque::new();
        }
    }
}

pub struct Sender {
    shared: Arc<Shared>,
}

/// A ring holding at most `capacity` items, whose bytes count against
/// `ledger`, and its first subscriber.
pub fn channel(capacity: usize, ledger: Arc<Ledger>) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            first: 0,
            receivers: 0,
            closed: false,
        }),
        ready: Notify::new(),
        capacity: capacity.max(1),
        ledger,
    });
    let sender = Sender { shared };
    let receiver = sender.subscribe();
    (sender, receiver)
}

impl Sender {
    /// Queues `payload` for every current subscriber; `false` when there is
    /// none (nothing is kept).
    pub fn send(&self, payload: Payload) -> bool {
        let shared = &self.shared;
        let mut state = shared.lock();
        if state.receivers == 0 {
            return false;
        }
        shared
            .ledger
            .held
            .fetch_add(payload.len(), Ordering::Relaxed);
        let unread = state.receivers;
        state.items.push_back(Slot { payload, unread });
        while state.items.len() > shared.capacity
            || (state.items.len() > 1 && shared.ledger.over_budget())
        {
            shared.pop_front(&mut state);
        }
        drop(state);
        shared.ready.notify_waiters();
        true
    }

    /// A new subscriber, which gets the items sent from now on.
    pub fn subscribe(&self) -> Receiver {
        let mut state = self.shared.lock();
        state.receivers += 1;
        let next = state.first + state.items.len() as u64;
        drop(state);
        Receiver {
            shared: self.shared.clone(),
            next,
        }
    }

    pub fn receiver_count(&self) -> usize {
        self.shared.lock().receivers
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_waiters();
    }
}

/// What a subscriber reads: an item, or how many it missed.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Item(Payload),
    Lagged(u64),
}

pub struct Receiver {
    shared: Arc<Shared>,
    /// Sequence number of the next item to read.
    next: u64,
}

impl Receiver {
    /// The next item, `None` once the sender is gone and everything was read.
    pub async fn recv(&mut self) -> Option<Received> {
        let shared = self.shared.clone();
        loop {
            // Created before looking, so a send in between still wakes it.
            let ready = shared.ready.notified();
            match self.try_recv() {
                Ok(received) => return Some(received),
                Err(true) => return None,
                Err(false) => ready.await,
            }
        }
    }

    /// `Err(closed)` when nothing is waiting.
    fn try_recv(&mut self) -> Result<Received, bool> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if self.next < state.first {
            let missed = state.first - self.next;
            self.next = state.first;
            return Ok(Received::Lagged(missed));
        }
        let index = (self.next - state.first) as usize;
        let Some(slot) = state.items.get_mut(index) else {
            return Err(state.closed);
        };
        slot.unread -= 1;
        let payload = slot.payload.clone();
        self.next += 1;
        shared.release_read(&mut state);
        Ok(Received::Item(payload))
    }

    pub fn into_stream(self) -> impl Stream<Item = Received> + Send + 'static {
        stream::unfold(self, |mut receiver| async move {
            let received = receiver.recv().await?;
            Some((received, receiver))
        })
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut state = shared.lock();
        let start = self.next.saturating_sub(state.first) as usize;
        for slot in state.items.iter_mut().skip(start) {
            slot.unread -= 1;
        }
        state.receivers -= 1;
        shared.release_read(&mut state);
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn item(text: &str) -> Payload {
        text.into()
    }

    fn next(receiver: &mut Receiver) -> Option<Received> {
        receiver.recv().now_or_never().flatten()
    }

    #[test]
    fn an_item_is_freed_once_every_subscriber_read_it() {
        let ledger = Ledger::new(1 << 20);
        let (tx, mut a) = channel(8, ledger.clone());
        let mut b = tx.subscribe();
        assert!(tx.send(item("hello")));
        assert_eq!(ledger.held(), 5);
        assert_eq!(next(&mut a), Some(Received::Item(item("hello"))));
        assert_eq!(ledger.held(), 5, "b has not read it");
        assert_eq!(next(&mut b), Some(Received::Item(item("hello"))));
        assert_eq!(ledger.held(), 0);
        assert_eq!(next(&mut a), None, "nothing waiting");
    }

    #[test]
    fn a_subscriber_that_leaves_releases_what_it_did_not_read() {
        let ledger = Ledger::new(1 << 20);
        let (tx, a) = channel(8, ledger.clone());
        tx.send(item("one"));
        tx.send(item("two"));
        assert_eq!(ledger.held(), 6);
        drop(a);
        assert_eq!(ledger.held(), 0);
        assert!(!tx.send(item("three")), "nobody listens");
        assert_eq!(ledger.held(), 0);
    }

    #[test]
    fn a_subscriber_beyond_capacity_is_told_how_many_it_missed() {
        let (tx, mut slow) = channel(2, Ledger::new(1 << 20));
        for text in ["1", "2", "3", "4", "5"] {
            tx.send(item(text));
        }
        assert_eq!(next(&mut slow), Some(Received::Lagged(3)));
        assert_eq!(next(&mut slow), Some(Received::Item(item("4"))));
        assert_eq!(next(&mut slow), Some(Received::Item(item("5"))));
    }

    #[test]
    fn over_the_byte_budget_the_sending_ring_sheds_its_own_backlog() {
        let ledger = Ledger::new(10);
        let (stuck_tx, mut stuck) = channel(100, ledger.clone());
        let (busy_tx, mut busy) = channel(100, ledger.clone());
        stuck_tx.send(item("aaaaaaaa"));
        assert_eq!(ledger.held(), 8);
        // The busy ring's reader keeps up: it never loses an item, even
        // while the ledger is over budget.
        for _ in 0..3 {
            assert!(busy_tx.send(item("bbbbbb")));
            assert_eq!(next(&mut busy), Some(Received::Item(item("bbbbbb"))));
        }
        // The stuck ring sheds its oldest once it sends again over budget.
        stuck_tx.send(item("cccccccc"));
        assert_eq!(ledger.held(), 8);
        assert_eq!(next(&mut stuck), Some(Received::Lagged(1)));
        assert_eq!(next(&mut stuck), Some(Received::Item(item("cccccccc"))));
    }

    #[test]
    fn a_late_subscriber_only_gets_what_comes_after_it() {
        let (tx, mut first) = channel(8, Ledger::new(1 << 20));
        tx.send(item("before"));
        let mut late = tx.subscribe();
        tx.send(item("after"));
        assert_eq!(next(&mut late), Some(Received::Item(item("after"))));
        assert_eq!(next(&mut first), Some(Received::Item(item("before"))));
        drop(tx);
        assert_eq!(next(&mut first), Some(Received::Item(item("after"))));
        assert_eq!(next(&mut first), None);
        assert_eq!(
            first.recv().now_or_never(),
            Some(None),
            "closed once read out"
        );
    }
}
