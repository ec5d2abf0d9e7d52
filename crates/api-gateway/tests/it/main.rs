//! The gateway's integration tests, one binary: each module a concern, against
//! real Redis and PostgreSQL (a key prefix and a database per test).

mod admin;
mod browser;
mod chaos;
mod cli;
mod cluster;
mod companies;
mod consistency;
mod contract;
mod dashboard;
mod errors;
mod health;
mod helpers;
mod jobs;
mod keys;
mod lists;
mod outage;
mod payments;
mod persons;
mod photos;
mod processes;
mod sync;
mod traces;
mod webdriver;
mod workloads;
