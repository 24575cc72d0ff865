//! Arbitrary bytes as line protocol: parsing must never panic, and every line
//! that parses must read back unchanged after `write_line`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_schemas::line_protocol::{parse_lines, write_line, ParsedLine};

fuzz_target!(|data: &[u8]| {
    for line in parse_lines(data).flatten() {
        let mut text = String::new();
        write_line(&mut text, &line);
        let again: Vec<_> = parse_lines(text.as_bytes()).collect();
        assert_eq!(again, vec![Ok(ParsedLine { line_no: 1, ..line })], "{text:?}");
    }
});
