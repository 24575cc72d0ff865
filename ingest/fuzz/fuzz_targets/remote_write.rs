//! Arbitrary bytes as a remote-write body: snappy block → protobuf
//! `WriteRequest` → validation and batching must never panic, and whatever
//! decodes must convert into batches that encode and decode again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_ingest::convert::LabelLimits;
use strata_ingest::remote_write::{SeriesConverter, decode_request};
use strata_schemas::{TenantId, WriteBatch};

fuzz_target!(|body: &[u8]| {
    let Ok(request) = decode_request(body, 1 << 20) else { return };
    let tenant = TenantId::default_tenant();
    let conversion = SeriesConverter {
        tenant: &tenant,
        device_label: "device",
        partitions: 4,
        cache: None,
        limits: LabelLimits::default(),
    }
    .convert(&request);
    for (_, batch) in &conversion.batches {
        let bytes = batch.to_bytes();
        assert!(WriteBatch::decode(&bytes).is_ok(), "a batch built from a valid request must decode");
    }
});
