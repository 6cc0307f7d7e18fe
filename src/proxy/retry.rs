//! The retry rule, in one place: [`decide`] maps the facts of a failed attempt
//! to what happens next. `forward` only gathers the facts and carries out the
//! decision.
//!
//! | failure | nothing reached the upstream | decision |
//! |---|---|---|
//! | connect refused / timed out | yes | retry after a backoff pause, any method, on a fresh pick of upstream, while the hold timeout lasts; then `503` |
//! | pooled connection found closed before writing | yes | retry at once on another connection (a fresh one after a pause if it was a fresh one that failed); `503` when the hold is over |
//! | failed after the request was (partly) written | unknown | replay once, at once, only an idempotent method (GET HEAD PUT DELETE OPTIONS) carrying an idempotency key (`X-Request-Id`) with a buffered body, while the hold lasts; else `502` |
//! | no response head (or no progress sending) within the upstream timeout | unknown | never (`504`) |
//! | malformed response (head or framing) | yes, it answered | never (`502`: it would answer the same) |
//! | the client's own body failed (too large, too slow, malformed) | — | never (`413` / `408` / `400`) |
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

/// What went wrong in one attempt, as far as the rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection could be made (refused, timed out): nothing sent.
    Connect,
    /// The connection was found closed before any byte of the request was
    /// written; `reused`: it came from the pool.
    NotSent { reused: bool },
    /// The connection failed after (part of) the request was written.
    AfterSend,
    /// The upstream took no part of the request, or sent no response head,
    /// within the upstream timeout.
    TimedOut,
    /// The upstream answered something that is not valid HTTP/1.1.
    Malformed,
    /// The client's request body failed while being relayed.
    ClientBody,
}

/// The facts of a failed attempt.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub failure: Failure,
    pub method: &'a Method,
    /// The request carries an idempotency key the app honours.
    pub keyed: bool,
    /// The body is in memory (or empty), so it can be sent again whole.
    pub body_buffered: bool,
    /// Replays already made after a failure once sent.
    pub replays: u32,
    /// The hold timeout has not passed yet.
    pub time_left: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again on a fresh pick of upstream; `pause`: after the next backoff
    /// delay, else at once; `replay`: the request may have reached the
    /// upstream already (counts against [`MAX_REPLAYS`]).
    Retry { pause: bool, replay: bool },
    /// Give up and answer this.
    Fail(Verdict),
}

/// The answer when giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `503` + `Retry-After`: no upstream could take the request in time.
    Unavailable,
    /// `502`: the upstream failed under the request, or answered nonsense.
    BadGateway,
    /// `504`: the upstream did not answer in time.
    GatewayTimeout,
    /// The client's own body failed: its `4xx`.
    ClientError,
}

/// The rule (see the module table). Pure: every row is a unit test.
pub fn decide(f: &Facts<'_>) -> Decision {
    let again = |pause| Decision::Retry {
        pause,
        replay: false,
    };
    match f.failure {
        Failure::Connect | Failure::NotSent { reused: false } if f.time_left => again(true),
        Failure::Connect | Failure::NotSent { reused: false } => {
            Decision::Fail(Verdict::Unavailable)
        }
        // A stale pooled connection cost no time: the next one is tried at once.
        Failure::NotSent { reused: true } if f.time_left => again(false),
        Failure::NotSent { reused: true } => Decision::Fail(Verdict::Unavailable),
        Failure::AfterSend if f.time_left && may_replay(f) => Decision::Retry {
            pause: false,
            replay: true,
        },
        Failure::AfterSend | Failure::Malformed => Decision::Fail(Verdict::BadGateway),
        Failure::TimedOut => Decision::Fail(Verdict::GatewayTimeout),
        Failure::ClientBody => Decision::Fail(Verdict::ClientError),
    }
}

/// May a request that failed *after being sent* be sent again?
fn may_replay(f: &Facts<'_>) -> bool {
    is_idempotent(f.method) && f.keyed && f.body_buffered && f.replays < MAX_REPLAYS
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

    fn facts(failure: Failure, method: &Method) -> Facts<'_> {
        Facts {
            failure,
            method,
            keyed: true,
            body_buffered: true,
            replays: 0,
            time_left: true,
        }
    }

    const PAUSE: Decision = Decision::Retry {
        pause: true,
        replay: false,
    };
    const AT_ONCE: Decision = Decision::Retry {
        pause: false,
        replay: false,
    };
    const REPLAY: Decision = Decision::Retry {
        pause: false,
        replay: true,
    };

    /// Row 1: connect failures retry any method after a pause, until the hold.
    #[test]
    fn row_connect_failure() {
        for m in [Method::GET, Method::POST, Method::PATCH] {
            assert_eq!(decide(&facts(Failure::Connect, &m)), PAUSE);
            let late = Facts {
                time_left: false,
                ..facts(Failure::Connect, &m)
            };
            assert_eq!(decide(&late), Decision::Fail(Verdict::Unavailable));
        }
    }

    /// Row 2: a pooled connection found closed: at once; a fresh one: paused.
    #[test]
    fn row_closed_before_writing() {
        let post = Method::POST;
        assert_eq!(
            decide(&facts(Failure::NotSent { reused: true }, &post)),
            AT_ONCE
        );
        assert_eq!(
            decide(&facts(Failure::NotSent { reused: false }, &post)),
            PAUSE
        );
        for reused in [true, false] {
            let late = Facts {
                time_left: false,
                ..facts(Failure::NotSent { reused }, &post)
            };
            assert_eq!(decide(&late), Decision::Fail(Verdict::Unavailable));
        }
    }

    /// Row 3: after sending, only idempotent + keyed + buffered, once, in time.
    #[test]
    fn row_failed_after_sending() {
        let bad = Decision::Fail(Verdict::BadGateway);
        for m in [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ] {
            assert_eq!(decide(&facts(Failure::AfterSend, &m)), REPLAY, "{m}");
        }
        for m in [Method::POST, Method::PATCH] {
            assert_eq!(decide(&facts(Failure::AfterSend, &m)), bad, "{m}");
        }
        let get = Method::GET;
        let base = facts(Failure::AfterSend, &get);
        for f in [
            Facts {
                keyed: false,
                ..base
            },
            Facts {
                body_buffered: false,
                ..base
            },
            Facts { replays: 1, ..base },
            Facts {
                time_left: false,
                ..base
            },
        ] {
            assert_eq!(decide(&f), bad, "{f:?}");
        }
    }

    /// Row 4: a timeout is never retried.
    #[test]
    fn row_timeout() {
        assert_eq!(
            decide(&facts(Failure::TimedOut, &Method::GET)),
            Decision::Fail(Verdict::GatewayTimeout)
        );
    }

    /// Row 5: a malformed answer is never retried.
    #[test]
    fn row_malformed() {
        assert_eq!(
            decide(&facts(Failure::Malformed, &Method::GET)),
            Decision::Fail(Verdict::BadGateway)
        );
    }

    /// Row 6: the client's own body failing is the client's answer.
    #[test]
    fn row_client_body() {
        assert_eq!(
            decide(&facts(Failure::ClientBody, &Method::PUT)),
            Decision::Fail(Verdict::ClientError)
        );
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
