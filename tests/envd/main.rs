//! Integration tests: the real `envd` binary, real HTTP.

mod harness;

mod bad_input;
mod docker;
mod environments;
mod faults;
mod gateway;
mod import;
mod journal;
mod misses;
mod postgres;
mod proxy;
mod sample;
mod serving;
mod verify;
mod watch;
