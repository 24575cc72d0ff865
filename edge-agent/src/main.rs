//! `strata-edge`: not wired yet (the queue comes first).

fn main() {}
