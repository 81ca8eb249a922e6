//! Integration tests: the real `envd` binary, real HTTP.

mod harness;

mod bad_input;
mod faults;
mod gateway;
mod import;
mod misses;
mod proxy;
mod serving;
mod verify;
mod watch;
