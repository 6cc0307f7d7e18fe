//! Keeping client connections even across worker threads.
//!
//! Every worker accepts from the same listening socket, and the kernel wakes
//! whichever is idle first; that one then drains the whole accept queue. When a
//! load generator (or a burst of clients) opens 64 connections at once, one
//! worker was measured holding 56 of them and the other 8: the busy thread sets
//! the tail latency while the other idles. nginx avoids the same herd with
//! `EPOLLEXCLUSIVE` and `accept_mutex`; here the accepting worker keeps a
//! connection only while it is not serving clearly more than the least loaded
//! worker, and otherwise hands the socket to that worker's inbox. Once counts
//! are even a hand-off is rare, so the request path stays thread-local.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// A client connection moved between workers (deregistered from the sender's
/// reactor; the receiver registers it with its own).
pub type Handoff = (std::net::TcpStream, SocketAddr);

/// Live connection counts of all workers and the way into each one's inbox.
pub struct Spread {
    loads: Box<[AtomicUsize]>,
    inboxes: Box<[mpsc::UnboundedSender<Handoff>]>,
}

impl Spread {
    /// A spread over `workers` workers and the inbox each one reads.
    pub fn new(workers: usize) -> (Arc<Spread>, Vec<mpsc::UnboundedReceiver<Handoff>>) {
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let spread = Spread {
            loads: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            inboxes: senders.into_boxed_slice(),
        };
        (Arc::new(spread), receivers)
    }

    /// Which worker serves a connection that worker `me` just accepted, with
    /// that worker's count already raised: `me` itself unless another worker
    /// serves at least two connections fewer (one fewer would just move the
    /// imbalance back and forth).
    pub fn assign(&self, me: usize) -> usize {
        let mine = self.load(me);
        let (least, least_load) = (0..self.loads.len())
            .map(|i| (i, self.load(i)))
            .min_by_key(|&(_, l)| l)
            .unwrap_or((me, mine));
        let target = if least_load + 1 < mine { least } else { me };
        self.charge(target);
        target
    }

    /// Worker `idx` took on one more connection.
    pub fn charge(&self, idx: usize) {
        if let Some(l) = self.loads.get(idx) {
            l.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends an accepted connection to worker `to`; gives it back if that
    /// worker no longer reads its inbox (it is shutting down).
    pub fn hand_off(&self, to: usize, conn: Handoff) -> Result<(), Handoff> {
        match self.inboxes.get(to) {
            Some(tx) => tx.send(conn).map_err(|e| e.0),
            None => Err(conn),
        }
    }

    /// One of worker `idx`'s connections ended (or was never served).
    pub fn release(&self, idx: usize) {
        if let Some(l) = self.loads.get(idx) {
            // Never below zero, even if a release were ever doubled.
            let _ = l.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    fn load(&self, idx: usize) -> usize {
        self.loads
            .get(idx)
            .map_or(usize::MAX, |l| l.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_connections_while_even_and_hands_off_when_two_ahead() {
        let (s, _rx) = Spread::new(2);
        assert_eq!(s.assign(0), 0); // 1 / 0
        assert_eq!(s.assign(0), 0); // 2 / 0: one ahead is tolerated
        assert_eq!(s.assign(0), 1); // would be 3 / 0 → goes to worker 1
        assert_eq!(s.assign(0), 0); // 3 / 1
        assert_eq!(s.assign(0), 1); // 3 / 2
        assert_eq!((s.load(0), s.load(1)), (3, 2));
    }

    #[test]
    fn a_single_worker_keeps_everything() {
        let (s, _rx) = Spread::new(1);
        for _ in 0..10 {
            assert_eq!(s.assign(0), 0);
        }
        assert_eq!(s.load(0), 10);
    }

    #[test]
    fn release_lowers_the_count_and_never_below_zero() {
        let (s, _rx) = Spread::new(2);
        s.assign(1);
        s.release(1);
        s.release(1);
        assert_eq!(s.load(1), 0);
        assert_eq!(s.assign(1), 1);
    }

    #[test]
    fn a_closed_inbox_gives_the_connection_back() {
        let (s, rx) = Spread::new(2);
        drop(rx);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        assert!(s.hand_off(1, (c, addr)).is_err());
    }
}
