use super::*;
use crate::config::TimeUnit;

fn route(toml_text: &str) -> Route {
    let sub: Subscription = toml::from_str(toml_text).unwrap();
    Route::new(&sub).unwrap()
}

#[test]
fn topics_match_like_the_broker() {
    for (filter, topic, want) in [
        ("farms/+/+/soil", "farms/f1/d7/soil", true),
        ("farms/+/+/soil", "farms/f1/soil", false),
        ("farms/+/+/soil", "farms/f1/d7/soil/x", false),
        ("farms/#", "farms", true),
        ("farms/#", "farms/a/b", true),
        ("#", "$SYS/x", false),
        ("+/x", "$SYS/x", false),
        ("a/+", "a/", true),
        ("a", "a", true),
        ("a", "b", false),
    ] {
        assert_eq!(topic_matches(filter, topic), want, "{filter} {topic}");
    }
}

#[test]
fn templates_name_topic_levels() {
    let shape = filter_levels("farms/+/+/soil").unwrap();
    let t = Template::parse("m_{3}_{1}", shape).unwrap();
    assert_eq!(t.render(&["farms", "f1", "d7", "soil"]).unwrap(), "m_soil_f1");
    assert!(Template::parse("{4}", shape).unwrap_err().contains("level 4"));
    assert!(Template::parse("{x}", shape).is_err());
    assert!(Template::parse("a}", shape).is_err());
    let open = Template::parse("{5}", filter_levels("a/#").unwrap()).unwrap();
    assert!(open.render(&["a", "b"]).unwrap_err().contains("level 5"));
    assert!(Template::parse("{1}", shape).unwrap().render(&["farms", ""]).is_err(), "empty level");
}

#[test]
fn json_messages_become_lines() {
    let r = route(
        r#"topic = "farms/+/+/soil"
            format = "json"
            measurement = "soil"
            tags = { farm = "{1}", device = "{2}" }
            timestamp = "ts"
            precision = "ms""#,
    );
    let c = convert(
        &r,
        "farms/f1/d7/soil",
        br#"{"ts": 1700000000123, "moisture": 31, "probe": {"temp": 18.5, "ok": true}, "note": "x", "n": null, "a": [1]}"#,
        42,
    )
    .unwrap();
    assert_eq!(c.payload, "soil,device=d7,farm=f1 moisture=31,probe_ok=true,probe_temp=18.5 1700000000123000000\n");
    assert_eq!(c.lines, 1);
    // Without the member: the agent's time; an array: one line per object; RFC 3339.
    let c = convert(&r, "farms/f1/d7/soil", br#"[{"v": 1}, {"v": 2, "ts": "2023-11-14T22:13:20Z"}]"#, 42).unwrap();
    assert_eq!(c.payload, "soil,device=d7,farm=f1 v=1 42\nsoil,device=d7,farm=f1 v=2 1700000000000000000\n");
    for (payload, reason) in [
        (&b"{not json"[..], "invalid_json"),
        (b"[1]", "invalid_json"),
        (b"[]", "empty"),
        (br#"{"note": "x"}"#, "no_fields"),
        (br#"{"ts": true, "v": 1}"#, "invalid_timestamp"),
        (br#"{"ts": 1e300, "v": 1}"#, "invalid_timestamp"),
        (br#"{"bad\nkey": 1}"#, "invalid_line"),
    ] {
        let e = convert(&r, "farms/f1/d7/soil", payload, 42).unwrap_err();
        assert_eq!(e.reason, reason, "{}: {e:?}", String::from_utf8_lossy(payload));
    }
}

#[test]
fn line_protocol_messages_get_topic_tags() {
    let r = route(
        r#"topic = "lp/#"
            format = "line_protocol"
            tags = { gw = "{1}" }
            precision = "s""#,
    );
    let c = convert(&r, "lp/g1", b"m,gw=old,a=1 v=1 1700000000\nbad\nm v=2\n", 42).unwrap();
    assert_eq!(c.payload, "m,gw=g1,a=1 v=1 1700000000000000000\nm,gw=g1 v=2 42\n");
    assert_eq!((c.lines, c.rejected_lines), (2, 1));
    assert!(c.first_error.unwrap().starts_with("line 2"));
    assert_eq!(convert(&r, "lp", b"m v=1", 0).unwrap_err().reason, "topic");
    assert_eq!(convert(&r, "lp/g1", b"bad", 0).unwrap_err().reason, "invalid_line");
    assert_eq!(convert(&r, "lp/g1", b"\n\n", 0).unwrap_err().reason, "empty");
    let plain = route("topic = \"x\"\nformat = \"line_protocol\"");
    assert_eq!(plain.sub.precision, TimeUnit::Nanoseconds);
    assert_eq!(convert(&plain, "x", b"m v=1 5", 0).unwrap().payload, "m v=1 5\n");
}

#[test]
fn messages_on_no_subscription_or_too_large_are_rejected() {
    let routes = vec![route("topic = \"a/+\"\nformat = \"line_protocol\"")];
    let publish = |topic: &str, payload: &[u8]| Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
    assert_eq!(convert_one(&routes, &publish("b/c", b"m v=1"), 100, 0).unwrap_err().reason, "no_subscription");
    assert_eq!(convert_one(&routes, &publish("a/c", &[b'x'; 101]), 100, 0).unwrap_err().reason, "too_large");
    assert_eq!(convert_one(&routes, &publish("a/c", b"m v=1 1"), 100, 0).unwrap().payload, "m v=1 1\n");
}
