//! Dynamic client registration metadata (RFC 7591): parsing and validation, called
//! directly — no server, so it runs at full speed.
#![no_main]

use tessera::oauth::registration::{Metadata, validate};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(meta) = Metadata::parse(data) {
        let _ = validate(&meta, false);
        let _ = validate(&meta, true);
    }
});
