//! The dead-letter topic against the REAL Pulsar started by `infra/dev/services up` (each test
//! fails, saying how to start it, when the services env file is missing). Every test works on
//! topics of its own, random names, so runs and tests never see each other's letters.
//!
//! What is checked: `ensure_topics` is idempotent and refuses a different partition count;
//! letters published with `PulsarDeadLetters` carry their properties and are listed, in order,
//! as often as asked without being consumed; `replay --error store_refused` re-publishes exactly
//! those letters' events to the events topic (key = content id, one partition per content), a
//! dry run and a second replay publish nothing; purge removes only old letters; big letters
//! travel in parts and replay whole; a missing topic is reported (and not created); a second
//! reader is refused as busy; and the binary's exit codes.

#![cfg(feature = "pulsar")]

mod failures;
mod letters;
mod support;
