pub mod persons;
pub mod queues;
