//! An authorization request's query string through every check that needs no client: limits,
//! duplicates, response type and mode, request objects, prompt, max_age, acr_values and claims,
//! authorization_details. Any input must give Ok or an OAuth error, never a panic.
#![no_main]

use ladder_server::endpoints::authorize::check_params;
use ladder_server::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = Params::parse(data);
    if let Err(e) = check_params(&params) {
        assert!(e.status.is_client_error(), "{e}");
    }
});
