//! The token request parser: any body at `/token` from an authenticated client.
#![no_main]

mod common;

use base64::Engine as _;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let server = common::server();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", server.client_id, server.client_secret));
    let head = format!(
        "POST /token HTTP/1.1\r\nAuthorization: Basic {basic}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    );
    common::send(&head, data);
});
