//! Arbitrary bytes as line protocol: parsing must never panic, and every line
//! that parses must read back unchanged after `write_line`. With small bounds
//! on tags and fields, the same lines must parse or fail at a bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_schemas::line_protocol::{parse_lines, parse_lines_with, write_line, ParseOptions, ParsedLine};

fuzz_target!(|data: &[u8]| {
    for line in parse_lines(data).flatten() {
        let mut text = String::new();
        write_line(&mut text, &line);
        let again: Vec<_> = parse_lines(text.as_bytes()).collect();
        assert_eq!(again, vec![Ok(ParsedLine { line_no: 1, ..line })], "{text:?}");
    }
    let bounds = ParseOptions { max_tags: 2, max_fields: 3 };
    for (bounded, free) in parse_lines_with(data, bounds).zip(parse_lines(data)) {
        if let Ok(line) = bounded {
            assert!(line.tags.len() <= 2 && line.fields.len() <= 3);
            assert_eq!(Ok(line), free);
        }
    }
});
