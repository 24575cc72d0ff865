# Sourced by the scripts that build test tools from crates.io (tansu, s3s-fs):
# a light release profile for `cargo install`. The tests need working
# programs, not the fastest ones, and a cold build of these tools was the
# largest part of CI's time (tansu alone took 24 minutes with its own
# profile's fat LTO and one codegen unit). Config from the environment
# overrides the profile in the installed package's manifest.
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_RELEASE_OPT_LEVEL=1
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_INCREMENTAL=false
