use std::borrow::Cow;

use super::*;

/// Parses `input`, which must hold exactly one point line.
fn one(input: &str) -> ParsedLine<'_> {
    let mut lines: Vec<_> = parse_lines(input.as_bytes()).collect();
    assert_eq!(lines.len(), 1, "expected one line in {input:?}, got {lines:?}");
    match lines.remove(0) {
        Ok(line) => line,
        Err(e) => panic!("{input:?} failed: {e}"),
    }
}

/// Parses `input`, which must hold exactly one line, and returns its error.
fn error(input: &str) -> ParseError {
    let mut lines: Vec<_> = parse_lines(input.as_bytes()).collect();
    assert_eq!(lines.len(), 1, "expected one line in {input:?}, got {lines:?}");
    match lines.remove(0) {
        Ok(line) => panic!("{input:?} parsed as {line:?}"),
        Err(e) => e,
    }
}

/// Asserts that `input` fails at `column` (of line 1) with a message containing `needle`.
fn assert_error(input: &str, column: usize, needle: &str) {
    let e = error(input);
    assert_eq!((e.line, e.column), (1, column), "{input:?}: {e}");
    assert!(e.message.contains(needle), "{input:?}: message {:?} lacks {needle:?}", e.message);
}

fn field<'a>(line: &'a ParsedLine<'_>, key: &str) -> &'a FieldValue<'a> {
    match line.fields.iter().find(|(k, _)| k == key) {
        Some((_, v)) => v,
        None => panic!("no field {key:?} in {line:?}"),
    }
}

fn tags<'a>(line: &'a ParsedLine<'_>) -> Vec<(&'a str, &'a str)> {
    line.tags.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect()
}

// ---- structure -------------------------------------------------------------

#[test]
fn parses_a_full_line() {
    let line =
        one("weather,location=us-midwest,station=KX temp=82.5,ok=true,count=12i,n=7u,note=\"hi\" 1465839830100400200");
    assert_eq!(line.line_no, 1);
    assert_eq!(line.measurement, "weather");
    assert_eq!(tags(&line), [("location", "us-midwest"), ("station", "KX")]);
    assert_eq!(
        line.fields,
        [
            (Cow::Borrowed("temp"), FieldValue::Float(82.5)),
            (Cow::Borrowed("ok"), FieldValue::Boolean(true)),
            (Cow::Borrowed("count"), FieldValue::Integer(12)),
            (Cow::Borrowed("n"), FieldValue::UInteger(7)),
            (Cow::Borrowed("note"), FieldValue::String(Cow::Borrowed("hi"))),
        ]
    );
    assert_eq!(line.timestamp, Some(1_465_839_830_100_400_200));
}

#[test]
fn tags_are_optional() {
    let line = one("cpu value=1");
    assert_eq!(line.measurement, "cpu");
    assert!(line.tags.is_empty());
    assert_eq!(line.fields, [(Cow::Borrowed("value"), FieldValue::Float(1.0))]);
}

#[test]
fn tags_keep_input_order_unsorted() {
    let line = one("m,z=1,a=2,m=3 f=1");
    assert_eq!(tags(&line), [("z", "1"), ("a", "2"), ("m", "3")]);
}

#[test]
fn missing_timestamp_is_none() {
    assert_eq!(one("m f=1").timestamp, None);
    assert_eq!(one("m f=1   ").timestamp, None);
}

#[test]
fn negative_timestamp_is_accepted() {
    assert_eq!(one("m f=1 -1465839830100400200").timestamp, Some(-1_465_839_830_100_400_200));
}

#[test]
fn timestamp_covers_the_i64_range() {
    assert_eq!(one("m f=1 9223372036854775807").timestamp, Some(i64::MAX));
    assert_eq!(one("m f=1 -9223372036854775808").timestamp, Some(i64::MIN));
}

#[test]
fn sections_may_be_separated_by_several_spaces() {
    let line = one("m,t=v   f=1    17   ");
    assert_eq!(tags(&line), [("t", "v")]);
    assert_eq!(line.timestamp, Some(17));
}

#[test]
fn leading_whitespace_is_skipped() {
    assert_eq!(one("  \t m f=1").measurement, "m");
}

#[test]
fn unescaped_text_is_borrowed() {
    let line = one("m,t=v f=\"s\"");
    assert!(matches!(line.measurement, Cow::Borrowed(_)));
    assert!(matches!(line.tags[0], (Cow::Borrowed(_), Cow::Borrowed(_))));
    assert!(matches!(line.fields[0], (Cow::Borrowed(_), FieldValue::String(Cow::Borrowed(_)))));
}

#[test]
fn a_literal_backslash_alone_still_borrows() {
    let line = one(r"m\x,t\y=v\z f=1");
    assert!(matches!(line.measurement, Cow::Borrowed(r"m\x")));
    assert!(matches!(line.tags[0], (Cow::Borrowed(r"t\y"), Cow::Borrowed(r"v\z"))));
}

#[test]
fn duplicate_field_keeps_first_position_and_last_value() {
    let line = one("m a=1,b=2,a=3");
    assert_eq!(
        line.fields,
        [(Cow::Borrowed("a"), FieldValue::Float(3.0)), (Cow::Borrowed("b"), FieldValue::Float(2.0))]
    );
}

#[test]
fn many_distinct_fields_are_all_kept() {
    let text: Vec<String> = (0..200).map(|i| format!("f{i}={i}i")).collect();
    let input = format!("m {}", text.join(","));
    let line = one(&input);
    assert_eq!(line.fields.len(), 200);
    assert_eq!(field(&line, "f199"), &FieldValue::Integer(199));
}

#[test]
fn many_fields_with_repeats_keep_first_position_and_last_value() {
    // Past the filter's few keys the duplicate check uses the hash index.
    let mut text: Vec<String> = (0..100).map(|i| format!("f{i}={i}i")).collect();
    text.extend((0..100).step_by(7).map(|i| format!("f{i}={}i", i + 1000)));
    let input = format!("m {}", text.join(","));
    let line = one(&input);
    assert_eq!(line.fields.len(), 100);
    assert_eq!(line.fields[7], (Cow::Borrowed("f7"), FieldValue::Integer(1007)));
    assert_eq!(line.fields[8], (Cow::Borrowed("f8"), FieldValue::Integer(8)));
}

#[test]
fn duplicate_tag_past_the_filter_is_found() {
    let tags: Vec<String> = (0..40).map(|i| format!("t{i}=v")).collect();
    let input = format!("m,{},t33=w f=1", tags.join(","));
    let column = input.find("t33=w").unwrap() + 1;
    assert_error(&input, column, "duplicate tag key \"t33\"");
}

#[test]
fn a_line_of_many_fields_keeps_every_field_and_finds_a_late_duplicate() {
    // 200,000 distinct fields (a quadratic duplicate check took minutes on
    // this; its speed is measured by the `wide_line` criterion bench in
    // benches/benches/line_protocol_parse.rs, not here).
    let text: Vec<String> = (0..200_000).map(|i| format!("f{i}=1")).collect();
    let input = format!("m {}", text.join(","));
    assert_eq!(one(&input).fields.len(), 200_000);
    // The same key again at the very end: the last write wins, nothing is lost.
    let input = format!("{input},f7=2");
    let line = one(&input);
    assert_eq!(line.fields.len(), 200_000);
    assert_eq!(line.fields[7], (Cow::Borrowed("f7"), FieldValue::Float(2.0)), "first position, last value");
}

// ---- bounds ------------------------------------------------------------------------

fn bounded(input: &str, max_tags: usize, max_fields: usize) -> Result<ParsedLine<'_>, ParseError> {
    let mut lines = parse_lines_with(input.as_bytes(), ParseOptions { max_tags, max_fields });
    let line = lines.next().expect("one line");
    assert!(lines.next().is_none());
    line
}

#[test]
fn tags_over_the_bound_are_refused_at_the_first_extra_tag() {
    assert!(bounded("m,a=1,b=2 f=1", 2, 10).is_ok());
    let e = bounded("m,a=1,b=2,c=3 f=1", 2, 10).unwrap_err();
    assert_eq!((e.line, e.column, e.kind), (1, 11, ParseErrorKind::TooManyTags), "{e}");
    assert!(e.message.contains("more than 2 tags"), "{e}");
    assert_eq!(bounded("m,a=1 f=1", 0, 10).unwrap_err().kind, ParseErrorKind::TooManyTags);
}

#[test]
fn distinct_fields_over_the_bound_are_refused_at_the_first_extra_field() {
    assert!(bounded("m a=1,b=2,a=3,b=4", 10, 2).is_ok(), "repeats do not count");
    let e = bounded("m a=1,b=2,c=3", 10, 2).unwrap_err();
    assert_eq!((e.line, e.column, e.kind), (1, 11, ParseErrorKind::TooManyFields), "{e}");
    assert!(e.message.contains("more than 2 distinct fields"), "{e}");
}

#[test]
fn a_line_over_the_field_bound_stops_early_and_the_next_line_parses() {
    let text: Vec<String> = (0..800_000).map(|i| format!("f{i}=1")).collect();
    let input = format!("m {}\nm ok=1\n", text.join(","));
    let results: Vec<_> = parse_lines_with(input.as_bytes(), ParseOptions { max_tags: 29, max_fields: 1000 }).collect();
    assert_eq!(results.len(), 2);
    let e = results[0].as_ref().unwrap_err();
    assert_eq!((e.line, e.kind), (1, ParseErrorKind::TooManyFields));
    assert_eq!(e.column, input.find("f1000=").unwrap() + 1);
    assert_eq!(results[1].as_ref().unwrap().fields.len(), 1);
}

// ---- control characters ------------------------------------------------------------

#[test]
fn control_characters_in_names_are_refused_at_their_column() {
    assert_error("c\0pu f=1", 2, "control character U+0000 in the measurement name");
    assert_error("cpu,h\x01st=a f=1", 6, "control character U+0001 in a tag key");
    assert_error("cpu,host=a f\x7f=1", 13, "control character U+007F in a field key");
    assert_error("cpu\tx f=1", 4, "control character U+0009 in the measurement name");
    // C1 controls (two bytes in UTF-8) and escaped ones too.
    assert_error("cpu,h\u{85}=a f=1", 6, "control character U+0085 in a tag key");
    assert_error("cpu,h\\\0=a f=1", 7, "control character U+0000 in a tag key");
    assert_error("cpu f\\\x1b=1", 7, "control character U+001B in a field key");
}

#[test]
fn control_characters_in_tag_values_are_refused_except_tab() {
    assert_error("cpu,host=a\0b f=1", 11, "control character U+0000 in the value of tag \"host\"");
    assert_error("cpu,host=\x1b[2J f=1", 10, "control character U+001B in the value of tag \"host\"");
    assert_error("cpu,host=a\rb f=1", 11, "(tab is the only one allowed there)");
    assert_eq!(tags(&one("cpu,host=a\tb f=1")), [("host", "a\tb")]);
}

#[test]
fn printable_non_ascii_next_to_c1_bytes_is_accepted() {
    // '°' and 'ß' are C2 B0 and C3 9F: a C1 lead byte or a C1-like second byte, not controls.
    let line = one("temp°,unit=°C,ß=ß t°=1 1");
    assert_eq!(line.measurement, "temp°");
    assert_eq!(tags(&line), [("unit", "°C"), ("ß", "ß")]);
}

#[test]
fn control_characters_in_string_fields_are_kept() {
    let line = one("m s=\"a\0b\x1b\"");
    assert_eq!(field(&line, "s"), &FieldValue::String(Cow::Borrowed("a\0b\x1b")));
}

// ---- lines, comments, blank lines -----------------------------------------------

#[test]
fn line_numbers_count_blank_and_comment_lines() {
    let input = "# header\n\nm f=1\n   \n\t# indented comment\nm f=2\n";
    let lines: Vec<_> = parse_lines(input.as_bytes()).map(|r| r.map(|l| l.line_no)).collect();
    assert_eq!(lines, [Ok(3), Ok(6)]);
}

#[test]
fn crlf_line_endings_are_stripped() {
    let input = "m f=1 10\r\nm s=\"x\"\r\n\r\nm f=3i\r\n";
    let lines: Vec<_> = parse_lines(input.as_bytes()).collect::<Result<_, _>>().expect("all lines parse");
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0].timestamp, Some(10));
    assert_eq!(field(&lines[1], "s"), &FieldValue::String(Cow::Borrowed("x")));
    assert_eq!(lines[2].line_no, 4);
    assert_eq!(field(&lines[2], "f"), &FieldValue::Integer(3));
}

#[test]
fn empty_and_blank_inputs_yield_nothing() {
    for input in ["", "\n", "\n\n\r\n", "   \t  ", "# only a comment", "#\n#"] {
        assert_eq!(parse_lines(input.as_bytes()).count(), 0, "{input:?}");
    }
}

#[test]
fn last_line_needs_no_newline() {
    let lines: Vec<_> = parse_lines(b"m f=1\nm f=2").collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(Result::is_ok));
}

#[test]
fn a_hash_inside_a_line_is_not_a_comment() {
    let line = one("m,t=#1 f=\"#\"");
    assert_eq!(tags(&line), [("t", "#1")]);
}

#[test]
fn next_into_reuses_the_line() {
    let mut lines = parse_lines(b"a,t=1 f=1\n\nb g=2i,h=3i 5\nbad\nc x=t");
    let mut line = ParsedLine::default();
    assert_eq!(lines.next_into(&mut line), Some(Ok(())));
    assert_eq!((line.line_no, line.measurement.as_ref(), line.tags.len()), (1, "a", 1));
    assert_eq!(lines.next_into(&mut line), Some(Ok(())));
    assert_eq!((line.line_no, line.measurement.as_ref(), line.tags.len(), line.fields.len()), (3, "b", 0, 2));
    assert_eq!(line.timestamp, Some(5));
    assert!(matches!(lines.next_into(&mut line), Some(Err(ParseError { line: 4, .. }))));
    assert_eq!(lines.next_into(&mut line), Some(Ok(())));
    assert_eq!((line.line_no, line.timestamp), (5, None));
    assert_eq!(line.fields, [(Cow::Borrowed("x"), FieldValue::Boolean(true))]);
    assert_eq!(lines.next_into(&mut line), None);
}

#[test]
fn errors_do_not_stop_the_iterator() {
    let input = "m f=1\nbad\nm f=2\nm f=\"open\nm f=3";
    let results: Vec<_> = parse_lines(input.as_bytes()).map(|r| r.map(|l| l.line_no).map_err(|e| e.line)).collect();
    assert_eq!(results, [Ok(1), Err(2), Ok(3), Err(4), Ok(5)]);
}

#[test]
fn newline_search_finds_every_position() {
    for len in 0..40 {
        for at in 0..len {
            let mut bytes = vec![b'a'; len];
            bytes[at] = b'\n';
            assert_eq!(find_newline(&bytes), Some(at), "len {len}, at {at}");
        }
        assert_eq!(find_newline(&vec![b'a'; len]), None);
    }
    // Bytes next to 0x0a must not confuse the word-at-a-time search.
    assert_eq!(find_newline(&[0x0b, 0x09, 0x0b, 0x8a, 0x0b, 0xff, 0x00, 0x01, 0x0a]), Some(8));
}

// ---- escapes -----------------------------------------------------------------

#[test]
fn measurement_escapes_comma_space_and_backslash() {
    assert_eq!(one(r"my\ cpu\,1 f=1").measurement, "my cpu,1");
    assert_eq!(one(r"a\\b f=1").measurement, r"a\b");
    assert!(matches!(one(r"my\ cpu f=1").measurement, Cow::Owned(_)));
}

#[test]
fn measurement_keeps_backslash_before_other_characters() {
    assert_eq!(one(r"a\=b\x\é f=1").measurement, r"a\=b\x\é");
    assert_eq!(one("a=b f=1").measurement, "a=b");
}

#[test]
fn measurement_follows_the_reference_backslash_table() {
    // Reference: \ → \, \\ → \, \\\ → \\, \\\\ → \\, \\\\\ → \\\, \\\\\\ → \\\ (followed by a letter).
    let cases = [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)];
    for (written, read) in cases {
        let input = format!("m{}x f=1", "\\".repeat(written));
        assert_eq!(one(&input).measurement, format!("m{}x", "\\".repeat(read)), "{input}");
    }
}

#[test]
fn tag_keys_and_values_escape_comma_equals_space_and_backslash() {
    let line = one(r"m,k\,1\=a\ b=v\,1\=2\ 3\\,plain=x\y f=1");
    assert_eq!(tags(&line), [("k,1=a b", r"v,1=2 3\"), ("plain", r"x\y")]);
}

#[test]
fn field_keys_escape_comma_equals_space_and_backslash() {
    let line = one(r"m f\,1\=2\ 3\\=1,g\h=2");
    assert_eq!(line.fields[0].0, r"f,1=2 3\");
    assert_eq!(line.fields[1].0, r"g\h");
}

#[test]
fn string_values_escape_quote_and_backslash_only() {
    let line = one(r#"m s="say \"hi\", a\\b, c\d, e\n = f""#);
    assert_eq!(field(&line, "s"), &FieldValue::String(Cow::Owned(r#"say "hi", a\b, c\d, e\n = f"#.into())));
}

#[test]
fn string_values_may_hold_spaces_commas_equals_and_be_empty() {
    let line = one(r#"m a="x, y=z w",b="" 3"#);
    assert_eq!(field(&line, "a"), &FieldValue::String(Cow::Borrowed("x, y=z w")));
    assert_eq!(field(&line, "b"), &FieldValue::String(Cow::Borrowed("")));
    assert_eq!(line.timestamp, Some(3));
}

#[test]
fn string_ending_in_escaped_backslash_is_closed() {
    let line = one(r#"m s="dir\\",t=1i"#);
    assert_eq!(field(&line, "s"), &FieldValue::String(Cow::Owned(r"dir\".into())));
    assert_eq!(field(&line, "t"), &FieldValue::Integer(1));
}

#[test]
fn utf8_names_and_values_are_accepted() {
    let line = one("météo,région=Île-de-France température=21.5,état=\"🚀 ok\"");
    assert_eq!(line.measurement, "météo");
    assert_eq!(tags(&line), [("région", "Île-de-France")]);
    assert_eq!(field(&line, "état"), &FieldValue::String(Cow::Borrowed("🚀 ok")));
}

// ---- field values ------------------------------------------------------------------

#[test]
fn every_boolean_spelling_is_accepted() {
    for (text, value) in [
        ("t", true),
        ("T", true),
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("f", false),
        ("F", false),
        ("false", false),
        ("False", false),
        ("FALSE", false),
    ] {
        let input = format!("m b={text}");
        assert_eq!(field(&one(&input), "b"), &FieldValue::Boolean(value), "{text}");
    }
}

#[test]
fn other_boolean_spellings_are_rejected() {
    for text in ["tRUE", "yes", "tru", "FaLsE", "1b"] {
        let e = error(&format!("m b={text}"));
        assert_eq!(e.column, 5, "{text}: {e}");
    }
}

#[test]
fn floats_accept_the_reference_forms() {
    for (text, value) in [
        ("1", 1.0),
        ("1.5", 1.5),
        ("-1.5e-3", -1.5e-3),
        ("1.", 1.0),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1e3", 1e3),
        ("1E+3", 1e3),
        ("1.e3", 1e3),
        ("-1.234456e+78", -1.234456e78),
        ("0", 0.0),
        ("007.50", 7.5),
        ("18.27", 18.27),
        ("0.1", 0.1),
        ("3.912", 3.912),
        ("1e-400", 0.0),
        ("1.7976931348623157e308", f64::MAX),
        ("4.9e-324", 4.9e-324),
        ("123456789012345678901234567890", 123_456_789_012_345_678_901_234_567_890.0),
        ("0.30000000000000004", 0.300_000_000_000_000_04),
        ("9007199254740993", 9_007_199_254_740_993.0),
    ] {
        let input = format!("m x={text}");
        assert_eq!(field(&one(&input), "x"), &FieldValue::Float(value), "{text}");
    }
}

#[test]
fn float_fast_path_matches_std_parse() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..20_000 {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let digits = (state >> 20) & 0xff_ffff_ffff;
        let scale = ((state >> 8) & 0xf) as usize;
        let mut text = digits.to_string();
        if scale < text.len() {
            text.insert(text.len() - scale, '.');
        }
        let expected: f64 = text.parse().expect("std parses it");
        let input = format!("m x={text}");
        assert_eq!(field(&one(&input), "x"), &FieldValue::Float(expected), "{text}");
    }
}

#[test]
fn negative_zero_float_is_negative() {
    let line = one("m x=-0.0");
    assert!(matches!(field(&line, "x"), FieldValue::Float(v) if *v == 0.0 && v.is_sign_negative()));
}

#[test]
fn integers_cover_the_i64_range() {
    for (text, value) in [
        ("0i", 0),
        ("123i", 123),
        ("-12i", -12),
        ("9223372036854775807i", i64::MAX),
        ("-9223372036854775808i", i64::MIN),
    ] {
        let input = format!("m x={text}");
        assert_eq!(field(&one(&input), "x"), &FieldValue::Integer(value), "{text}");
    }
}

#[test]
fn unsigned_integers_cover_the_u64_range() {
    for (text, value) in [("0u", 0), ("42u", 42), ("18446744073709551615u", u64::MAX)] {
        let input = format!("m x={text}");
        assert_eq!(field(&one(&input), "x"), &FieldValue::UInteger(value), "{text}");
    }
}

// ---- errors, with their exact position --------------------------------------------

#[test]
fn rejects_line_without_field_set() {
    assert_error("cpu", 4, "missing field set");
    assert_error("cpu,host=a", 11, "missing field set");
    assert_error("cpu,host=a   ", 14, "missing field set");
}

#[test]
fn rejects_empty_measurement() {
    assert_error(",t=v f=1", 1, "missing measurement name");
}

#[test]
fn rejects_malformed_tags() {
    assert_error("cpu, f=1", 5, "expected a tag key, found ' '");
    assert_error("cpu,", 5, "expected a tag key, found the end of the line");
    assert_error("cpu,,t=v f=1", 5, "expected a tag key, found ','");
    assert_error("cpu,=v f=1", 5, "empty tag key");
    assert_error("cpu,host f=1", 9, "expected '=' after tag key \"host\", found ' '");
    assert_error("cpu,host,a=b f=1", 9, "expected '=' after tag key \"host\", found ','");
    assert_error("cpu,host= f=1", 10, "missing value for tag \"host\"");
    assert_error("cpu,host=,a=b f=1", 10, "missing value for tag \"host\"");
    assert_error("cpu,host=a=b f=1", 11, "unescaped '=' in the value of tag \"host\"");
    assert_error("cpu,a=1,b=2,a=3 f=1", 13, "duplicate tag key \"a\"");
}

#[test]
fn rejects_malformed_fields() {
    assert_error("cpu f", 6, "expected '=' after field key \"f\", found the end of the line");
    assert_error("cpu f,g=1", 6, "expected '=' after field key \"f\", found ','");
    assert_error("cpu =1", 5, "empty field key");
    assert_error("cpu f=1,", 9, "expected a field key, found the end of the line");
    assert_error("cpu f=1, g=2", 9, "expected a field key, found ' '");
    assert_error("cpu ,g=2", 5, "expected a field key, found ','");
    assert_error("cpu f=", 7, "missing value for field \"f\"");
    assert_error("cpu f=,g=1", 7, "missing value for field \"f\"");
    assert_error("cpu f= 1", 7, "missing value for field \"f\"");
    assert_error("cpu s=\"a\"b", 10, "expected ',' or ' ' after the value of field \"s\", found 'b'");
}

#[test]
fn rejects_invalid_numbers() {
    assert_error("m,t=v count=12xi 1", 13, "invalid integer \"12xi\" for field \"count\"");
    assert_error("m count=1.5i", 9, "invalid integer \"1.5i\"");
    assert_error("m x=12x", 5, "invalid number \"12x\" for field \"x\"");
    assert_error("m x=1.2.3", 5, "invalid number \"1.2.3\"");
    assert_error("m x=-", 5, "invalid number \"-\"");
    assert_error("m x=.", 5, "invalid number \".\"");
    assert_error("m x=1e", 5, "invalid number \"1e\"");
    assert_error("m x=1e+", 5, "invalid number \"1e+\"");
    assert_error("m x=1_000", 5, "invalid number \"1_000\"");
    assert_error("m x=0x10", 5, "invalid number \"0x10\"");
    assert_error("m x=+1", 5, "a leading '+' is not allowed");
    assert_error("m x=-1u", 5, "unsigned integer \"-1u\" for field \"x\" cannot be negative");
    assert_error("m x=1.5u", 5, "invalid unsigned integer \"1.5u\"");
}

#[test]
fn rejects_out_of_range_numbers() {
    assert_error("m count=9223372036854775808i", 9, "integer 9223372036854775808 out of range for i64");
    assert_error("m count=-9223372036854775809i", 9, "integer -9223372036854775809 out of range for i64");
    assert_error("m n=18446744073709551616u", 5, "unsigned integer 18446744073709551616 out of range for u64");
    assert_error("m x=1e309", 5, "float 1e309 out of range for f64");
    assert_error("m x=-1e309", 5, "float -1e309 out of range for f64");
}

#[test]
fn rejects_nan_and_infinity() {
    for text in ["NaN", "nan", "-nan", "inf", "-inf", "+inf", "Infinity", "-INFINITY"] {
        assert_error(&format!("m x={text}"), 5, "NaN and infinity are not supported");
    }
}

#[test]
fn rejects_unquoted_strings() {
    assert_error("m status=ok", 10, "invalid value \"ok\" for field \"status\"");
    assert_error("m status=ok", 10, "double-quoted string");
    assert_error("m status='ok'", 10, "invalid value \"'ok'\"");
}

#[test]
fn rejects_unterminated_string() {
    assert_error("m msg=\"hello", 7, "unterminated string for field \"msg\"");
    assert_error(r#"m msg="hello\""#, 7, "unterminated string for field \"msg\"");
    // A string cannot continue onto the next line: both halves are errors.
    let errors: Vec<_> = parse_lines(b"m msg=\"two\nlines\" 1").map(|r| r.map(|_| ()).map_err(|e| e.line)).collect();
    assert_eq!(errors, [Err(1), Err(2)]);
}

#[test]
fn rejects_string_over_the_limit() {
    let long = "x".repeat(MAX_STRING_LEN + 1);
    assert_error(&format!("m s=\"{long}\""), 5, "over the limit of 65536");
    let at_limit = "x".repeat(MAX_STRING_LEN);
    assert!(
        matches!(field(&one(&format!("m s=\"{at_limit}\"")), "s"), FieldValue::String(s) if s.len() == MAX_STRING_LEN)
    );
}

#[test]
fn rejects_invalid_timestamps() {
    assert_error("m f=1 12a", 7, "invalid timestamp \"12a\"");
    assert_error("m f=1 1.5", 7, "invalid timestamp \"1.5\"");
    assert_error("m f=1 -", 7, "invalid timestamp \"-\"");
    assert_error("m f=1 +5", 7, "invalid timestamp \"+5\"");
    assert_error("m f=1 9223372036854775808", 7, "timestamp 9223372036854775808 out of range for i64");
}

#[test]
fn rejects_trailing_characters_after_timestamp() {
    assert_error("m f=1 123 456", 11, "trailing characters after timestamp: \"456\"");
    assert_error("m f=1 123  x y", 12, "trailing characters after timestamp: \"x y\"");
}

#[test]
fn rejects_invalid_utf8_at_the_bad_byte() {
    let input = b"m,t=ok f=1\nm,t=\xff\xfe f=1\nm,t=ok f=2\n";
    let results: Vec<_> = parse_lines(input).collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok());
    let e = results[1].as_ref().expect_err("bad line");
    assert_eq!((e.line, e.column), (2, 5));
    assert!(e.message.contains("invalid UTF-8 (byte 0xff)"), "{e}");
}

#[test]
fn error_columns_count_leading_whitespace() {
    let e = error("  cpu f");
    assert_eq!((e.line, e.column), (1, 8));
}

#[test]
fn error_lines_count_every_physical_line() {
    let e = parse_lines(b"# c\n\nm f=1\r\n\r\nm f=1 x\r\n").find_map(Result::err).expect("an error");
    assert_eq!((e.line, e.column), (5, 7));
}

#[test]
fn error_messages_quote_and_shorten_long_tokens() {
    let token = "y".repeat(500);
    let e = error(&format!("m x={token}"));
    assert!(e.message.len() < 300, "{e}");
    assert!(e.message.contains("(500 bytes)"), "{e}");
}

#[test]
fn out_of_range_numbers_are_echoed_shortened() {
    let digits = "9".repeat(100_000);
    for input in
        [format!("m x={digits}i"), format!("m x={digits}u"), format!("m x={digits}"), format!("m x=1 {digits}")]
    {
        let e = error(&input);
        assert!(e.message.len() < 300, "{}", e.message.len());
        assert!(e.message.contains("… (100000 bytes)") || e.message.contains("… (100001 bytes)"), "{e}");
    }
}

#[test]
fn error_display_has_line_and_column() {
    let e = parse_lines(b"m f=1\nm f=1,temp").find_map(Result::err).expect("an error");
    assert_eq!(e.to_string(), "line 2, column 11: expected '=' after field key \"temp\", found the end of the line");
}

// ---- writer --------------------------------------------------------------------

fn line<'a>(
    measurement: &'a str,
    tags: &[(&'a str, &'a str)],
    fields: Vec<(&'a str, FieldValue<'a>)>,
    timestamp: Option<i64>,
) -> ParsedLine<'a> {
    ParsedLine {
        line_no: 1,
        measurement: measurement.into(),
        tags: tags.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
        fields: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        timestamp,
    }
}

fn written(line: &ParsedLine<'_>) -> String {
    let mut out = String::new();
    write_line(&mut out, line);
    out
}

#[test]
fn writes_each_value_type() {
    let l = line(
        "m",
        &[("t", "v")],
        vec![
            ("f", FieldValue::Float(1.5)),
            ("g", FieldValue::Float(-2.0)),
            ("i", FieldValue::Integer(-3)),
            ("u", FieldValue::UInteger(4)),
            ("b", FieldValue::Boolean(false)),
            ("s", FieldValue::String("x".into())),
        ],
        Some(-5),
    );
    assert_eq!(written(&l), "m,t=v f=1.5,g=-2,i=-3i,u=4u,b=false,s=\"x\" -5\n");
}

#[test]
fn writes_escapes_per_position() {
    let l = line(
        "a b,c=d\\",
        &[("k=1 2,3", "v\\x,y=z")],
        vec![("f\\", FieldValue::String("say \"hi\" \\ c:\\dir\\".into()))],
        None,
    );
    assert_eq!(written(&l), "a\\ b\\,c=d\\\\,k\\=1\\ 2\\,3=v\\x\\,y\\=z f\\\\=\"say \\\"hi\\\" \\ c:\\dir\\\\\"\n");
    assert_eq!(one(&written(&l)), l);
}

#[test]
fn writes_huge_and_tiny_floats_with_an_exponent() {
    let l = line("m", &[], vec![("a", FieldValue::Float(1e300)), ("b", FieldValue::Float(-2.5e-7))], None);
    assert_eq!(written(&l), "m a=1e300,b=-2.5e-7\n");
    assert_eq!(one(&written(&l)), l);
}

// ---- properties -------------------------------------------------------------------

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Characters for names, weighted towards the ones that need escaping
    /// (control characters are refused in names).
    const ALPHABET: &[char] = &[
        'a', 'b', 'z', 'A', 'Z', '0', '9', '_', '-', '.', ',', '=', ' ', '"', '\\', '\\', '#', 'é', '🍭', '°', 't',
        'i', 'u', 'e',
    ];

    /// Characters for tag values: names' plus tab, the one control character allowed there.
    const VALUE_ALPHABET: &[char] =
        &['a', 'z', '0', '_', ',', '=', ' ', '"', '\\', '\\', '#', '\t', 'é', '🍭', '°', 't', 'e'];

    /// Characters for string field values: anything but a newline.
    const STRING_ALPHABET: &[char] = &['a', 'z', ',', '=', ' ', '"', '\\', '\\', '#', '\t', '\r', '\0', 'é', '🍭'];

    fn text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(ALPHABET), 1..=max).prop_map(String::from_iter)
    }

    fn value_text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(VALUE_ALPHABET), 1..=max).prop_map(String::from_iter)
    }

    fn measurement() -> impl Strategy<Value = String> {
        // Leading '#' makes a comment: not representable.
        text(8).prop_map(|s| if s.starts_with('#') { format!("m{s}") } else { s })
    }

    fn distinct<V>(pairs: Vec<(String, V)>) -> Vec<(String, V)> {
        let mut seen = std::collections::HashSet::new();
        pairs.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect()
    }

    fn field_value() -> impl Strategy<Value = FieldValue<'static>> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(FieldValue::Float),
            (-1000.0..1000.0f64).prop_map(FieldValue::Float),
            any::<i64>().prop_map(FieldValue::Integer),
            any::<u64>().prop_map(FieldValue::UInteger),
            any::<bool>().prop_map(FieldValue::Boolean),
            prop::collection::vec(prop::sample::select(STRING_ALPHABET), 0..12)
                .prop_map(|chars| FieldValue::String(Cow::Owned(String::from_iter(chars)))),
        ]
    }

    fn valid_line() -> impl Strategy<Value = ParsedLine<'static>> {
        (
            measurement(),
            prop::collection::vec((text(6), value_text(6)), 0..4),
            prop::collection::vec((text(6), field_value()), 1..5),
            any::<Option<i64>>(),
        )
            .prop_map(|(measurement, tags, fields, timestamp)| ParsedLine {
                line_no: 0,
                measurement: Cow::Owned(measurement),
                tags: distinct(tags).into_iter().map(|(k, v)| (Cow::Owned(k), Cow::Owned(v))).collect(),
                fields: distinct(fields).into_iter().map(|(k, v)| (Cow::Owned(k), v)).collect(),
                timestamp,
            })
    }

    /// Lines that are always rejected, one per error class.
    const BAD_LINES: &[&[u8]] = &[
        b"cpu",
        b",t=v f=1",
        b"cpu,host f=1",
        b"cpu,host= f=1",
        b"cpu,a=1,a=2 f=1",
        b"cpu f",
        b"cpu f=",
        b"cpu f=1,",
        b"cpu f=\"open",
        b"cpu f=12x",
        b"cpu f=99999999999999999999i",
        b"cpu f=-1u",
        b"cpu f=NaN",
        b"cpu f=1 12a",
        b"cpu f=1 1 2",
        b"cpu,t=\xff f=1",
        b"c\0pu f=1",
        b"cpu,t=a\x1b f=1",
        b"cpu f\x7f=1",
    ];

    /// Bytes that matter to the grammar, to steer random input into the parser's corners.
    const SYNTAX_BYTES: &[u8] = b"ab=, \"\\\n\r\t#01-.eEiuTf\xff\xc3\xa9";

    proptest! {
        #[test]
        fn written_lines_parse_back_unchanged(lines in prop::collection::vec(valid_line(), 1..6)) {
            let mut text = String::new();
            for line in &lines {
                write_line(&mut text, line);
            }
            let parsed: Vec<_> = parse_lines(text.as_bytes()).collect();
            prop_assert_eq!(parsed.len(), lines.len(), "{}", text);
            for (i, (got, want)) in parsed.into_iter().zip(&lines).enumerate() {
                let want = ParsedLine { line_no: i + 1, ..want.clone() };
                prop_assert_eq!(got.map_err(|e| e.to_string()), Ok(want), "{}", text);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..300)) {
            check_arbitrary(&input)?;
        }

        #[test]
        fn syntax_heavy_bytes_never_panic(input in prop::collection::vec(prop::sample::select(SYNTAX_BYTES), 0..120)) {
            check_arbitrary(&input)?;
        }

        #[test]
        fn a_bad_line_does_not_affect_its_neighbours(
            lines in prop::collection::vec(valid_line(), 1..6),
            bad in prop::sample::select(BAD_LINES),
            at in any::<prop::sample::Index>(),
        ) {
            let at = at.index(lines.len() + 1);
            let mut text = String::new();
            for line in &lines {
                write_line(&mut text, line);
            }
            let mut input = Vec::new();
            for (i, physical) in text.split_inclusive('\n').enumerate() {
                if i == at {
                    input.extend_from_slice(bad);
                    input.push(b'\n');
                }
                input.extend_from_slice(physical.as_bytes());
            }
            if at == lines.len() {
                input.extend_from_slice(bad);
            }
            let results: Vec<_> = parse_lines(&input).collect();
            prop_assert_eq!(results.len(), lines.len() + 1);
            for (i, result) in results.into_iter().enumerate() {
                match i.cmp(&at) {
                    std::cmp::Ordering::Equal => {
                        prop_assert!(matches!(&result, Err(e) if e.line == at + 1), "{:?}", result);
                    }
                    order => {
                        let index = if order == std::cmp::Ordering::Less { i } else { i - 1 };
                        let want = ParsedLine { line_no: i + 1, ..lines[index].clone() };
                        prop_assert_eq!(result.map_err(|e| e.to_string()), Ok(want));
                    }
                }
            }
        }
    }

    /// A line `m<tags> <fields>` of plain keys, and the column of each tag and field key.
    fn plain_line(tag_keys: &[String], field_keys: &[String]) -> (String, Vec<usize>, Vec<usize>) {
        let mut text = String::from("m");
        let mut tag_columns = Vec::new();
        for k in tag_keys {
            text.push(',');
            tag_columns.push(text.len() + 1);
            text.push_str(&format!("{k}=v"));
        }
        let mut field_columns = Vec::new();
        for (i, k) in field_keys.iter().enumerate() {
            text.push(if i == 0 { ' ' } else { ',' });
            field_columns.push(text.len() + 1);
            text.push_str(&format!("{k}={i}i"));
        }
        (text, tag_columns, field_columns)
    }

    /// A control character to insert, and whether it is the one allowed in tag values.
    const CONTROLS: &[char] = &['\0', '\u{1}', '\t', '\r', '\u{1b}', '\u{1f}', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}'];

    proptest! {
        /// Few distinct keys, many repeats, on both sides of the filter's key count.
        #[test]
        fn duplicate_checks_agree_with_a_naive_model(
            tag_keys in prop::collection::vec("[a-f]{1,2}", 0..60),
            field_keys in prop::collection::vec("[a-f]{1,2}", 1..80),
        ) {
            let (text, tag_columns, _) = plain_line(&tag_keys, &field_keys);
            let result = parse_lines(text.as_bytes()).next().expect("one line");
            // Model: the first tag key seen before is an error at its column.
            let first_repeat = (0..tag_keys.len()).find(|&i| tag_keys[..i].contains(&tag_keys[i]));
            match first_repeat {
                Some(i) => {
                    let e = result.expect_err("a repeated tag key");
                    prop_assert_eq!(e.column, tag_columns[i], "{}", e);
                    prop_assert!(e.message.starts_with("duplicate tag key"), "{}", e);
                }
                None => {
                    let line = result.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    // Model: fields in order of first occurrence, each with its last value.
                    let mut want: Vec<(String, i64)> = Vec::new();
                    for (i, k) in field_keys.iter().enumerate() {
                        match want.iter_mut().find(|(w, _)| w == k) {
                            Some(slot) => slot.1 = i as i64,
                            None => want.push((k.clone(), i as i64)),
                        }
                    }
                    let got: Vec<(String, i64)> = line
                        .fields
                        .iter()
                        .map(|(k, v)| match v {
                            FieldValue::Integer(i) => (k.to_string(), *i),
                            other => panic!("{other:?}"),
                        })
                        .collect();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(line.tags.len(), tag_keys.len());
                }
            }
        }

        #[test]
        fn control_characters_are_refused_at_their_column(
            names in prop::collection::vec("[a-zé°]{1,4}", 4),
            part in 0..4usize,
            at in any::<prop::sample::Index>(),
            control in prop::sample::select(CONTROLS),
        ) {
            let mut names = names;
            let target = &mut names[part];
            let boundaries: Vec<usize> = (0..=target.len()).filter(|&i| target.is_char_boundary(i)).collect();
            let offset = *at.get(&boundaries);
            // A leading tab is whitespace before the line, not part of the measurement.
            prop_assume!(!(part == 0 && offset == 0 && control == '\t'));
            target.insert(offset, control);
            let [measurement, tag_key, tag_value, field_key] = [&names[0], &names[1], &names[2], &names[3]];
            let text = format!("{measurement},{tag_key}={tag_value} {field_key}=1");
            let column = [0, measurement.len() + 1, measurement.len() + tag_key.len() + 2, measurement.len() + tag_key.len() + tag_value.len() + 3][part] + offset + 1;
            let result = parse_lines(text.as_bytes()).next().expect("one line");
            if part == 2 && control == '\t' {
                prop_assert!(result.is_ok(), "{:?}", result);
            } else {
                let e = result.expect_err("a control character");
                prop_assert_eq!(e.column, column, "{}", e);
                let code = format!("control character U+{:04X}", u32::from(control));
                prop_assert!(e.message.starts_with(&code), "{}", e);
            }
        }
    }

    /// Whatever the input: no panic, errors point inside their line, and every
    /// line that parses survives a write/parse round trip.
    fn check_arbitrary(input: &[u8]) -> Result<(), TestCaseError> {
        let physical: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        for result in parse_lines(input) {
            match result {
                Err(e) => {
                    prop_assert!(e.line >= 1 && e.line <= physical.len(), "{}", e);
                    prop_assert!(e.column >= 1 && e.column <= physical[e.line - 1].len() + 1, "{}", e);
                }
                Ok(line) => {
                    let mut text = String::new();
                    write_line(&mut text, &line);
                    let again: Vec<_> = parse_lines(text.as_bytes()).collect();
                    let want = ParsedLine { line_no: 1, ..line };
                    prop_assert_eq!(again, vec![Ok(want)], "{}", text);
                }
            }
        }
        Ok(())
    }
}
