//! Webhook requests as a sender can shape them: the content type, the
//! `aeg-*` and `ce-*` headers, and the body, through the same reader the
//! webhook uses. Any panic is a bug; a refusal is a problem body.

#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

/// Header sets the first input byte picks from: each schema and mode.
const SHAPES: [&[(&str, &str)]; 6] = [
    &[("content-type", "application/json")],
    &[
        ("content-type", "application/json"),
        ("aeg-event-type", "SubscriptionValidation"),
    ],
    &[("content-type", "application/cloudevents+json")],
    &[("content-type", "application/cloudevents-batch+json")],
    &[
        ("ce-specversion", "1.0"),
        ("content-type", "application/json"),
    ],
    &[],
];

fuzz_target!(|input: &[u8]| {
    let Some((&shape, rest)) = input.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (name, value) in SHAPES[usize::from(shape) % SHAPES.len()] {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    // Binary mode: `ce-*` headers from the input's first line, `name:value`
    // pairs separated by `;`, the rest is the body.
    let (head, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(end) if shape % 6 == 4 => (&rest[..end], &rest[end + 1..]),
        _ => (&[][..], rest),
    };
    for pair in head.split(|&b| b == b';') {
        let Some(colon) = pair.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = [b"ce-".as_slice(), &pair[..colon]].concat();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&pair[colon + 1..]),
        ) {
            headers.insert(name, value);
        }
    }
    let _ = gridlet::ingest::schema::read(&headers, body);
});
