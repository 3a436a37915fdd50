//! The authorization request parser: any query string at `/authorize`, with the
//! registered client's id in front so the fuzzer reaches past client lookup.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let server = common::server();
    let query = common::query_from(data);
    let head = format!(
        "GET /authorize?client_id={}&{query} HTTP/1.1\r\n",
        server.client_id
    );
    common::send(&head, b"");
});
