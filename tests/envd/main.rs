//! Integration tests: the real `envd` binary, real HTTP.

mod harness;

mod bad_input;
mod faults;
mod gateway;
mod misses;
mod proxy;
mod serving;
mod watch;
