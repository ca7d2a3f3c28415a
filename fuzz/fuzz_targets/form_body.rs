//! urlencoded form bodies (token, introspection, revocation, and every page's POST) as the
//! parameter reader sees them: lookups, duplicates and limits.
#![no_main]

use ladder_server::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = Params::parse(data);
    for name in ["grant_type", "code", "client_id", "refresh_token", "token", ""] {
        let _ = params.get(name);
    }
    if let Some(name) = params.first_duplicate() {
        assert!(params.get(name).is_err(), "a duplicate that get() accepts");
    }
    let _ = params.over_limit(50, 8192);
});
