//! The resource-server guard's token verification, against a live issuer's JWKS:
//! any string as a bearer token must be refused or accepted, never panic.
#![no_main]

mod common;

use std::sync::OnceLock;

fn guard() -> &'static tessera_guard::Guard {
    static GUARD: OnceLock<tessera_guard::Guard> = OnceLock::new();
    GUARD.get_or_init(|| {
        let server = common::server();
        let issuer = format!("http://{}", server.addr);
        server
            .runtime
            .block_on(tessera_guard::Guard::discover(
                tessera_guard::GuardConfig::new(issuer.clone(), issuer),
            ))
            .expect("guard")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let guard = guard();
    let token = String::from_utf8_lossy(data);
    let _ = common::server().runtime.block_on(guard.verify(&token));
});
