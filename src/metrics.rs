//! Handoff metrics through the `metrics` facade (feature `metrics`; see
//! [`docs::metrics`](crate::docs::metrics) for each one).
//!
//! Without the feature every function here is empty and inlined away, and no argument
//! costs anything to build (callers pass what they already hold), so the layer pays nothing.

#[cfg(feature = "metrics")]
use http::Response;

#[cfg(feature = "metrics")]
use crate::config::Config;
#[cfg(feature = "metrics")]
use crate::outcome::HandoffOutcome;

/// Handoffs minted: a cookieless change from the cache answered with `AMP-Redirect-To`.
#[cfg(feature = "metrics")]
pub(crate) const MINTED: &str = "amp_session_handoffs_minted_total";
/// Completions by `outcome` (the labels of `outcomes!`).
#[cfg(feature = "metrics")]
pub(crate) const COMPLETED: &str = "amp_session_handoffs_completed_total";
/// Nonces the replay guard holds, when it can tell ([`ReplayGuard::occupancy`]).
///
/// [`ReplayGuard::occupancy`]: crate::ReplayGuard::occupancy
#[cfg(feature = "metrics")]
pub(crate) const GUARD_NONCES: &str = "amp_session_replay_guard_nonces";
/// Seconds from mint to an applied change, by `outcome` (`applied_directly`, `confirmed`).
#[cfg(feature = "metrics")]
pub(crate) const HANDOFF_SECONDS: &str = "amp_session_handoff_seconds";

/// The `outcome` label of a completion. Exhaustive inside the crate: a new outcome must get
/// its label here.
/// Each outcome, its label value, and its keys: built at compile time, so recording a
/// labelled metric allocates nothing (the `counter!(name, "outcome" => value)` form builds
/// its labels on every call).
#[cfg(feature = "metrics")]
macro_rules! outcomes {
    ($($outcome:ident => $label:literal),* $(,)?) => {
        #[cfg(test)]
        pub(crate) fn outcome_label(outcome: HandoffOutcome) -> &'static str {
            match outcome {
                $(HandoffOutcome::$outcome => $label,)*
            }
        }

        /// `name` with `outcome="<label>"`, one static key per outcome.
        fn outcome_key(name: &'static str, outcome: HandoffOutcome) -> &'static metrics::Key {
            mod keys {
                $(
                    #[allow(non_upper_case_globals)]
                    pub(super) static $outcome: [metrics::Label; 1] =
                        [metrics::Label::from_static_parts("outcome", $label)];
                )*
            }
            static COMPLETED_KEYS: &[(HandoffOutcome, metrics::Key)] = &[
                $((HandoffOutcome::$outcome, metrics::Key::from_static_parts(COMPLETED, &keys::$outcome)),)*
            ];
            static SECONDS_KEYS: &[(HandoffOutcome, metrics::Key)] = &[
                $((HandoffOutcome::$outcome, metrics::Key::from_static_parts(HANDOFF_SECONDS, &keys::$outcome)),)*
            ];
            let table = if name == COMPLETED { COMPLETED_KEYS } else { SECONDS_KEYS };
            table
                .iter()
                .find(|(o, _)| *o == outcome)
                .map(|(_, k)| k)
                .expect("every outcome has its keys")
        }
    };
}

#[cfg(feature = "metrics")]
outcomes! {
    Applied => "applied_directly",
    Confirmed => "confirmed",
    AlreadyApplied => "already_used",
    ConfirmationShown => "confirmation_shown",
    Failed => "failed",
    Pending => "pending",
    Expired => "expired",
    Refused => "refused",
    GuardUnavailable => "guard_unavailable",
}

/// What the `counter!` / `histogram!` macros register with: this crate, level INFO.
#[cfg(feature = "metrics")]
static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

#[cfg(feature = "metrics")]
fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        metrics::describe_counter!(
            MINTED,
            "Handoffs minted: cookieless changes from an AMP cache page sent on to the origin."
        );
        metrics::describe_counter!(
            COMPLETED,
            "Handoff completions on the origin, by outcome; confirmation_shown over all is \
             the confirmation rate."
        );
        metrics::describe_gauge!(
            GUARD_NONCES,
            "Handoff nonces the replay guard holds (used or in progress, until they expire)."
        );
        metrics::describe_histogram!(
            HANDOFF_SECONDS,
            metrics::Unit::Seconds,
            "Seconds from mint to the applied change, by outcome (whole seconds)."
        );
    });
}

/// A handoff was minted.
#[inline(always)]
pub(crate) fn handoff_minted() {
    #[cfg(feature = "metrics")]
    {
        describe();
        metrics::counter!(MINTED).increment(1);
    }
}

/// A completion answered: counts its outcome (an error of the app counts as `failed`: the
/// change was not applied) and reads the replay guard's occupancy.
#[cfg(feature = "metrics")]
pub(crate) fn handoff_completed<B, E>(config: &Config, answer: &Result<Response<B>, E>) {
    describe();
    let outcome = match answer {
        Ok(res) => res.extensions().get::<HandoffOutcome>().copied(),
        Err(_) => Some(HandoffOutcome::Failed),
    };
    if let Some(outcome) = outcome {
        let key = outcome_key(COMPLETED, outcome);
        metrics::with_recorder(|r| r.register_counter(key, &METADATA)).increment(1);
    }
    if let Some(n) = config.replay_guard.occupancy() {
        // A gauge is an f64; counts this large lose nothing below 2^53.
        metrics::gauge!(GUARD_NONCES).set(n as f64);
    }
}

/// A handoff's change was applied: the time since its token was minted (`issued_at`, Unix
/// seconds; a clock behind the minter's counts as 0).
#[cfg(feature = "metrics")]
pub(crate) fn handoff_applied(config: &Config, issued_at: u64, confirmed: bool) {
    describe();
    let outcome = if confirmed {
        HandoffOutcome::Confirmed
    } else {
        HandoffOutcome::Applied
    };
    let seconds = config.now().saturating_sub(issued_at);
    let key = outcome_key(HANDOFF_SECONDS, outcome);
    metrics::with_recorder(|r| r.register_histogram(key, &METADATA)).record(seconds as f64);
}

/// Without the feature: nothing (the clock is not even read).
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub(crate) fn handoff_applied(_: &crate::config::Config, _: u64, _: bool) {}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_a_distinct_label() {
        let all = [
            HandoffOutcome::Applied,
            HandoffOutcome::Confirmed,
            HandoffOutcome::AlreadyApplied,
            HandoffOutcome::ConfirmationShown,
            HandoffOutcome::Failed,
            HandoffOutcome::Pending,
            HandoffOutcome::Expired,
            HandoffOutcome::Refused,
            HandoffOutcome::GuardUnavailable,
        ];
        let mut labels: Vec<&str> = all.iter().map(|o| outcome_label(*o)).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
        // The static keys carry the same names and labels the macros would build.
        for o in all {
            for name in [COMPLETED, HANDOFF_SECONDS] {
                let key = outcome_key(name, o);
                assert_eq!(key.name(), name);
                let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
                assert_eq!(labels, [("outcome", outcome_label(o))]);
                assert_eq!(
                    *key,
                    metrics::Key::from_parts(name, &[("outcome", outcome_label(o))])
                );
            }
        }
    }
}
