//! Restart delays: exponential, capped, jittered (see [`Backoff`]).

use std::time::Duration;

use crate::config::Backoff;

/// Floor of the growth when `initial` is zero ("first restart immediate").
const GROWTH_FLOOR: Duration = Duration::from_millis(100);

/// Delay before restart attempt `attempt` (1-based). `unit` in [0, 1) picks the
/// jitter, so the function stays pure and testable.
pub fn delay(b: &Backoff, attempt: u32, unit: f64) -> Duration {
    let base = if attempt <= 1 {
        b.initial
    } else {
        let start = b.initial.max(GROWTH_FLOOR).as_secs_f64();
        let exponent = (attempt - 2).min(64) as i32;
        Duration::from_secs_f64((start * b.multiplier.powi(exponent)).min(b.max.as_secs_f64()))
    };
    let base = base.min(b.max);
    if base.is_zero() || b.jitter == 0.0 {
        return base;
    }
    // Spread over [base × (1 − jitter), base × (1 + jitter)], never above max.
    let factor = 1.0 + b.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    Duration::from_secs_f64(base.as_secs_f64() * factor).min(b.max)
}

/// A tiny deterministic PRNG (xorshift64*) for jitter; quality is ample for
/// spreading restarts, and it keeps the state machine free of global state.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// A number in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_is_initial_then_grows_to_max() {
        let b = Backoff {
            initial: Duration::ZERO,
            max: ms(1000),
            multiplier: 2.0,
            jitter: 0.0,
            reset_after: ms(1),
        };
        let got: Vec<u64> = (1..=7)
            .map(|n| delay(&b, n, 0.5).as_millis() as u64)
            .collect();
        assert_eq!(got, [0, 100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_below_max() {
        let b = Backoff {
            initial: ms(200),
            max: ms(1000),
            multiplier: 2.0,
            jitter: 0.5,
            reset_after: ms(1),
        };
        assert_eq!(delay(&b, 1, 0.0), ms(100));
        assert_eq!(delay(&b, 1, 1.0), ms(300));
        assert_eq!(delay(&b, 10, 1.0), ms(1000));
        let mut j = Jitter::new(7);
        for _ in 0..1000 {
            let u = j.next_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn zero_max_means_always_immediate() {
        let b = Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
            multiplier: 2.0,
            jitter: 0.3,
            reset_after: ms(1),
        };
        assert!((1..50).all(|n| delay(&b, n, 0.9).is_zero()));
    }
}
