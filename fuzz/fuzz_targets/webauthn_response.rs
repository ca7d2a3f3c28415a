//! The JSON body a browser posts to finish a passkey sign-in or registration, read as the
//! handlers read it.
#![no_main]

use ladder_server::interaction::passkey::Finish;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(finish) = serde_json::from_slice::<Finish>(data) else { return };
    if let Some(credential) = finish.authentication() {
        let _ = credential.get_credential_id();
    }
    let _ = finish.registration();
});
