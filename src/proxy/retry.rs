//! The retry rule, in one place.
//!
//! | failure | nothing reached the upstream | may be replayed |
//! |---|---|---|
//! | connect refused / timed out, pooled connection found closed before writing | yes | always, any method, until the hold timeout, on a fresh pick of upstream |
//! | failed after the request was (partly) written | unknown | only an idempotent method (GET HEAD PUT DELETE OPTIONS) carrying an idempotency key (`X-Request-Id`) with a buffered body, once |
//! | no response head within the upstream timeout | unknown | never (`504`) |
//!
//! The proxy sets `X-Request-Id` when the client sent none, so every request is
//! keyed; a POST is still never sent twice because POST is not idempotent.

use std::time::{Duration, Instant};

use http::Method;

/// Replays allowed after a failure that happened once the request was sent.
pub const MAX_REPLAYS: u32 = 1;

/// Methods whose repetition has the same effect as one execution (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

/// May a request that failed *after being sent* be sent again?
pub fn may_replay(method: &Method, keyed: bool, body_buffered: bool, replays: u32) -> bool {
    is_idempotent(method) && keyed && body_buffered && replays < MAX_REPLAYS
}

/// Delay between connect attempts: 5 ms doubling up to 100 ms.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(5);
    pub const MAX: Duration = Duration::from_millis(100);

    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The next delay, or `None` when sleeping it would pass `deadline`
    /// (the last delay is shortened to end at the deadline).
    pub fn next_within(&mut self, now: Instant, deadline: Instant) -> Option<Duration> {
        let left = deadline
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())?;
        let delay = self.next.min(left);
        self.next = (self.next * 2).min(Self::MAX);
        Some(delay)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        assert!(may_replay(&Method::GET, true, true, 0));
        assert!(!may_replay(&Method::GET, true, true, 1));
        assert!(!may_replay(&Method::GET, false, true, 0));
        assert!(!may_replay(&Method::PUT, true, false, 0));
        assert!(!may_replay(&Method::POST, true, true, 0));
        assert!(!may_replay(&Method::PATCH, true, true, 0));
    }

    #[test]
    fn backoff_doubles_caps_and_stops_at_deadline() {
        let now = Instant::now();
        let mut b = Backoff::new();
        let far = now + Duration::from_secs(10);
        let seq: Vec<_> = (0..7).map(|_| b.next_within(now, far).unwrap()).collect();
        let ms: Vec<u128> = seq.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [5, 10, 20, 40, 80, 100, 100]);
        assert_eq!(
            b.next_within(now, now + Duration::from_millis(30)),
            Some(Duration::from_millis(30))
        );
        assert_eq!(b.next_within(now, now), None);
    }
}
