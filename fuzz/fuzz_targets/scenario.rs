//! Drill scenarios (`func_emulator::scenario::Scenario::parse`): TOML text → `Scenario`.
//!
//! Input: a scenario file's text (UTF-8; other bytes are skipped, as the loader reads text).
//!
//! Properties (what `parse` promises today; the scenario code is being reworked, so only the
//! parse call and these few facts are relied on):
//! - no panic;
//! - an accepted scenario has a duration above zero and its timeline sorted by time, with no
//!   event after the duration.

#![no_main]

use func_emulator::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scenario) = Scenario::parse(text, "fuzz.toml") else {
        return;
    };
    assert!(!scenario.duration.0.is_zero());
    assert!(
        scenario.events.is_sorted_by_key(|e| e.t),
        "timeline not sorted"
    );
    assert!(scenario.events.iter().all(|e| e.t <= scenario.duration));
});
