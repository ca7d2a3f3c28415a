//! The `claims` JSON and `acr_values` as the request parser reads them, and `max_age`.
#![no_main]

use ladder_core::request::{AcrRequest, MaxAge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The first line is acr_values, the rest the claims JSON.
    let (acr_values, claims) = text.split_once('\n').unwrap_or(("", text));
    if let Ok(req) = AcrRequest::from_params(Some(acr_values), Some(claims)) {
        assert!(!req.is_essential() || !req.is_empty());
        assert!(req.values().iter().all(|v| !v.is_empty()));
    }
    let _ = AcrRequest::from_params(None, Some(text));
    if let Ok(age) = acr_values.parse::<MaxAge>() {
        assert!(age.secs() >= 0);
    }
});
